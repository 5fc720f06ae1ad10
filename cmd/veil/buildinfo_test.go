package main

import (
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/wedsync/veil/internal/fakeopenai"
)

// TestBuildInfoMetric: `veil serve` labels veil_build_info with the
// version and commit of its build, and the Go version.
func TestBuildInfoMetric(t *testing.T) {
	up := startFake(t, fakeopenai.Options{})
	v := startVeil(t, up.URL(), "")
	resp, err := http.Get("http://" + v.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := buildStamp()
	want := `veil_build_info{commit="` + c + `",go_version="` + runtime.Version() + `",version="` + version + `"} 1`
	if !strings.Contains(string(body), want+"\n") {
		var got []string
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "veil_build_info") {
				got = append(got, l)
			}
		}
		t.Errorf("/metrics has %q, want %s", got, want)
	}
}
