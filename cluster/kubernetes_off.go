//go:build !kubernetes

package cluster

import (
	"errors"

	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// KubeAPI stands in for the Kubernetes API configuration in binaries
// built without the provider.
type KubeAPI struct{ Host string }

func kubernetesProvider(*KubeAPI) (protocluster.ClusterProvider, error) {
	return nil, errors.New("this binary was built without the Kubernetes cluster provider: build it with -tags kubernetes (deploy/Dockerfile does), or use --cluster-provider nats")
}
