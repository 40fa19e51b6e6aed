//go:build kubernetes

package cluster_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/spectra-fab/spectra/cluster"
)

// apiServer is a double of the few Kubernetes API calls protoactor's
// provider makes, on the wire: get a pod, JSON-patch its labels, watch
// the pods of a label selector. (No kube-apiserver runs on this machine.)
type apiServer struct {
	mu       sync.Mutex
	pods     map[string]map[string]any // name → pod object
	watchers []chan map[string]any     // watch events
}

func newPod(name, ip string, ready bool, labels map[string]string) map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": "spectra", "uid": "uid-" + name, "labels": labels},
		"status": map[string]any{"phase": "Running", "podIP": ip, "podIPs": []map[string]any{{"ip": ip}},
			"containerStatuses": []map[string]any{{"name": "spectra", "ready": ready, "restartCount": 0, "image": "spectra", "imageID": ""}}},
	}
}

func labelsOf(pod map[string]any) map[string]string {
	out := map[string]string{}
	if m, ok := pod["metadata"].(map[string]any)["labels"].(map[string]string); ok {
		for k, v := range m {
			out[k] = v
		}
	}
	if m, ok := pod["metadata"].(map[string]any)["labels"].(map[string]any); ok {
		for k, v := range m {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

// put stores a pod and tells the watchers.
func (a *apiServer) put(pod map[string]any, event string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pods[pod["metadata"].(map[string]any)["name"].(string)] = pod
	for _, w := range a.watchers {
		w <- map[string]any{"type": event, "object": pod}
	}
}

func (a *apiServer) pod(name string) map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pods[name]
}

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true":
		sel := r.URL.Query().Get("labelSelector")
		k, v, _ := strings.Cut(sel, "=")
		ch := make(chan map[string]any, 64)
		a.mu.Lock()
		for _, p := range a.pods {
			ch <- map[string]any{"type": "ADDED", "object": p}
		}
		a.watchers = append(a.watchers, ch)
		a.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		enc := json.NewEncoder(w)
		for {
			select {
			case <-r.Context().Done():
				return
			case ev := <-ch:
				if labelsOf(ev["object"].(map[string]any))[k] != v && ev["type"] != "DELETED" {
					// Left the selector: Kubernetes reports it as deleted.
					if _, had := labelsOf(ev["object"].(map[string]any))[k]; !had {
						ev = map[string]any{"type": "DELETED", "object": ev["object"]}
					} else {
						continue
					}
				}
				if enc.Encode(ev) != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	case r.Method == http.MethodGet:
		p := a.pod(parts[len(parts)-1])
		if p == nil {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
			return
		}
		_ = json.NewEncoder(w).Encode(p)
	case r.Method == http.MethodPatch:
		var ops []struct {
			Op    string            `json:"op"`
			Path  string            `json:"path"`
			Value map[string]string `json:"value"`
		}
		if err := json.NewDecoder(r.Body).Decode(&ops); err != nil || len(ops) != 1 || ops[0].Path != "/metadata/labels" {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		p := a.pod(parts[len(parts)-1])
		if p == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		cp := map[string]any{}
		for k, v := range p {
			cp[k] = v
		}
		meta := map[string]any{}
		for k, v := range p["metadata"].(map[string]any) {
			meta[k] = v
		}
		meta["labels"] = ops[0].Value
		cp["metadata"] = meta
		a.put(cp, "MODIFIED")
		_ = json.NewEncoder(w).Encode(cp)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (a *apiServer) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.watchers = nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Built with -tags kubernetes (make test-kubernetes), and outside -race:
// protoactor's member list races with its gossip in-process (upstream
// #1131/#1108), whichever provider updates it.
//
// With --cluster-provider kubernetes a node labels its own pod through
// the API server (cluster, remoting port, member id, kinds), counts the
// ready pods of its cluster as members, drops one that stops being ready,
// and takes its labels off when it leaves.
func TestKubernetesProvider(t *testing.T) {
	host, _ := os.Hostname() // the provider's pod name
	api := &apiServer{pods: map[string]map[string]any{}}
	api.put(newPod(host, "127.0.0.1", true, map[string]string{"app": "spectra-cluster"}), "ADDED")
	srv := httptest.NewServer(api)
	defer srv.Close()
	defer api.close()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	tlsCfg, err := cluster.TLSFromSecret("cluster-secret-0123456789", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cluster.Join(system, cluster.Config{Node: "node-a", Host: "127.0.0.1", Port: port, TLS: tlsCfg,
		Provider: cluster.ProviderKubernetes, KubeAPI: &cluster.KubeAPI{Host: srv.URL},
		Kinds: []*protocluster.Kind{protocluster.NewKind("probe", actor.PropsFromFunc(func(actor.Context) {}))}})
	if err != nil {
		t.Fatal(err)
	}
	left := false
	defer func() {
		if !left {
			c.Leave()
		}
	}()

	waitFor(t, "the pod's member labels", func() bool {
		l := labelsOf(api.pod(host))
		return l["cluster.proto.actor/cluster"] == cluster.Name && l["cluster.proto.actor/port"] == fmt.Sprint(port) &&
			l["cluster.proto.actor/member-id"] != "" && l["cluster.proto.actor/kind-probe"] == "true" && l["app"] == "spectra-cluster"
	})
	waitFor(t, "itself as the one member", func() bool { return c.Members() == 1 })

	other := map[string]string{"cluster.proto.actor/cluster": cluster.Name, "cluster.proto.actor/port": "7102",
		"cluster.proto.actor/member-id": "other", "cluster.proto.actor/kind-probe": "true"}
	api.put(newPod("spectra-1", "127.0.0.2", true, other), "ADDED")
	waitFor(t, "a second member", func() bool { return c.Members() == 2 })
	api.put(newPod("spectra-1", "127.0.0.2", false, other), "MODIFIED")
	waitFor(t, "the pod that is not ready to drop out", func() bool { return c.Members() == 1 })

	c.Leave()
	left = true
	if l := labelsOf(api.pod(host)); l["cluster.proto.actor/cluster"] != "" || l["app"] != "spectra-cluster" {
		t.Errorf("labels after leaving: %v; want the provider's gone, the others kept", l)
	}
}
