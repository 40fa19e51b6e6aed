//go:build kubernetes

package cluster

import (
	"fmt"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	"k8s.io/client-go/rest"
)

// KubeAPI, for the Kubernetes provider, is the API server to use instead
// of the pod's service account (tests).
type KubeAPI = rest.Config

// kubernetesProvider is protoactor's Kubernetes provider on the pod's
// service account (rest.InClusterConfig), or on api when set (tests).
func kubernetesProvider(api *KubeAPI) (protocluster.ClusterProvider, error) {
	if api == nil {
		p, err := k8s.New()
		if err != nil {
			return nil, fmt.Errorf("kubernetes cluster provider (runs in a pod with a service account): %w", err)
		}
		return p, nil
	}
	return k8s.NewWithConfig(api)
}
