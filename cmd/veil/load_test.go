package main

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// callLoad keeps workers calling a veil's chat endpoint for rose-venue,
// one call at a time each, and notes the request IDs of the calls answered
// 2xx in full (a stream up to its [DONE]).
type callLoad struct {
	mu       sync.Mutex
	answered map[string]bool
	stop     chan struct{}
	wg       sync.WaitGroup
}

// startLoad starts workers sending bodies in turn to proxyAddr; before,
// when set, runs before each call with the worker and call numbers.
func startLoad(proxyAddr string, workers int, bodies []string, before func(w, i int)) *callLoad {
	l := &callLoad{answered: map[string]bool{}, stop: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if before != nil {
					before(w, i)
				}
				body := bodies[(w+i)%len(bodies)]
				req, _ := http.NewRequest("POST", "http://"+proxyAddr+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testCallerToken)
				req.Header.Set("X-Supplier-ID", "rose-venue")
				resp, err := client.Do(req)
				if err != nil {
					continue // refused or gone: not answered
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				whole := err == nil && (!strings.Contains(body, `"stream":true`) || strings.Contains(string(got), "[DONE]"))
				if resp.StatusCode/100 == 2 && whole {
					l.mu.Lock()
					l.answered[resp.Header.Get("X-Request-Id")] = true
					l.mu.Unlock()
				}
			}
		})
	}
	return l
}

// waitAnswered waits until n calls were answered.
func (l *callLoad) waitAnswered(t *testing.T, n int) {
	t.Helper()
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) { // a failure guard only
		l.mu.Lock()
		got := len(l.answered)
		l.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%d calls answered, want %d", got, n)
		}
	}
}

// end stops the workers and returns the IDs of the calls answered.
func (l *callLoad) end() map[string]bool {
	close(l.stop)
	l.wg.Wait()
	return l.answered
}
