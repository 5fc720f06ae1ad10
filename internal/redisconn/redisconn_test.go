package redisconn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/keys"
)

func TestCheck(t *testing.T) {
	sentinel := Sentinel{Master: "mymaster", Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379"}}
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{"valid", Options{Addr: "127.0.0.1:6379", DB: 2, Timeout: time.Second, PoolSize: 4}, ""},
		{"defaults left to the caller", Options{Addr: "redis:6379"}, ""},
		{"cluster", Options{Addrs: []string{"redis-0:6379", "redis-1:6379"}}, ""},
		{"sentinel", Options{Sentinel: sentinel, DB: 1}, ""},
		{"no address", Options{}, "no address"},
		{"no port", Options{Addr: "localhost"}, `address "localhost"`},
		{"no host", Options{Addr: ":6379"}, `address ":6379": want host:port`},
		{"addr and addrs", Options{Addr: "a:1", Addrs: []string{"b:2"}}, "exclusive"},
		{"addr and sentinel", Options{Addr: "a:1", Sentinel: sentinel}, "exclusive"},
		{"addrs and sentinel", Options{Addrs: []string{"b:2"}, Sentinel: sentinel}, "exclusive"},
		{"bad cluster address", Options{Addrs: []string{"b:2", "c"}}, `cluster address 2: address "c"`},
		{"cluster database", Options{Addrs: []string{"b:2"}, DB: 1}, "only database 0"},
		{"sentinel without master", Options{Sentinel: Sentinel{Addrs: sentinel.Addrs}}, "no master name"},
		{"sentinel without sentinels", Options{Sentinel: Sentinel{Master: "m"}}, "no sentinel addresses"},
		{"bad sentinel address", Options{Sentinel: Sentinel{Master: "m", Addrs: []string{"s"}}}, `sentinel address 1: address "s"`},
		{"negative database", Options{Addr: "localhost:6379", DB: -1}, "negative database -1"},
		{"negative timeout", Options{Addr: "localhost:6379", Timeout: -time.Second}, "negative timeout -1s"},
		{"negative pool size", Options{Addr: "localhost:6379", PoolSize: -1}, "negative pool size -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Check()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Check = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Check = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestKindAndString(t *testing.T) {
	tests := []struct {
		o          Options
		kind, text string
	}{
		{Options{Addr: "redis:6379"}, KindServer, "redis:6379"},
		{Options{Addrs: []string{"a:1", "b:2"}}, KindCluster, "cluster a:1,b:2"},
		{Options{Sentinel: Sentinel{Master: "m", Addrs: []string{"s:1", "t:2"}, Password: keys.NewSecret("pw")}},
			KindSentinel, "sentinel master m via s:1,t:2"},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			if got := tc.o.Kind(); got != tc.kind {
				t.Errorf("Kind = %q, want %q", got, tc.kind)
			}
			if got := tc.o.String(); got != tc.text {
				t.Errorf("String = %q, want %q", got, tc.text)
			}
		})
	}
}

// optionCase is one option read back from a client's options.
type optionCase struct {
	name      string
	got, want any
}

// checkOptions runs one subtest per option.
func checkOptions(t *testing.T, cases []optionCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("%v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestNewClientOptions(t *testing.T) {
	c, ok := NewClient(Options{Addr: "127.0.0.1:6379", Password: keys.NewSecret("pw"), DB: 3,
		Timeout: 250 * time.Millisecond, PoolSize: 7}).(*redis.Client)
	if !ok {
		t.Fatal("NewClient of one address is not a *redis.Client")
	}
	defer c.Close()
	o := c.Options()
	checkOptions(t, []optionCase{
		{"addr", o.Addr, "127.0.0.1:6379"},
		{"password", o.Password, "pw"},
		{"db", o.DB, 3},
		{"dial timeout", o.DialTimeout, 250 * time.Millisecond},
		{"read timeout", o.ReadTimeout, 250 * time.Millisecond},
		{"write timeout", o.WriteTimeout, 250 * time.Millisecond},
		{"pool timeout", o.PoolTimeout, 250 * time.Millisecond},
		{"pool size", o.PoolSize, 7},
		{"context deadlines", o.ContextTimeoutEnabled, true},
		{"no retries", o.MaxRetries, 0}, // -1 given, 0 after go-redis read it; 0 given would be 3
		{"one dial per attempt", o.DialerRetries, 1},
	})
}

func TestNewClientClusterOptions(t *testing.T) {
	in := Options{Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"}, Password: keys.NewSecret("pw"),
		Timeout: 250 * time.Millisecond, PoolSize: 7}
	c, ok := NewClient(in).(*redis.ClusterClient)
	if !ok {
		t.Fatal("NewClient of cluster addresses is not a *redis.ClusterClient")
	}
	defer c.Close()
	o := c.Options()
	checkOptions(t, []optionCase{
		{"addrs", strings.Join(o.Addrs, ","), "127.0.0.1:7000,127.0.0.1:7001"},
		{"password", o.Password, "pw"},
		{"dial timeout", o.DialTimeout, 250 * time.Millisecond},
		{"read timeout", o.ReadTimeout, 250 * time.Millisecond},
		{"write timeout", o.WriteTimeout, 250 * time.Millisecond},
		{"pool timeout", o.PoolTimeout, 250 * time.Millisecond},
		{"pool size", o.PoolSize, 7},
		{"context deadlines", o.ContextTimeoutEnabled, true},
		{"no retries", o.MaxRetries, -1},
		{"one dial per attempt", o.DialerRetries, 1},
		{"redirects followed", o.MaxRedirects, 3},
		{"masters only", o.ReadOnly, false},
	})
}

func TestNewClientSentinelOptions(t *testing.T) {
	in := Options{Sentinel: Sentinel{Master: "mymaster", Addrs: []string{"127.0.0.1:26379"}, Password: keys.NewSecret("spw")},
		Password: keys.NewSecret("pw"), DB: 2, Timeout: 250 * time.Millisecond, PoolSize: 7}
	c, ok := NewClient(in).(*redis.Client)
	if !ok {
		t.Fatal("NewClient of a sentinel group is not a *redis.Client")
	}
	_ = c.Close()
	o := failoverOptions(in)
	checkOptions(t, []optionCase{
		{"master", o.MasterName, "mymaster"},
		{"sentinels", strings.Join(o.SentinelAddrs, ","), "127.0.0.1:26379"},
		{"sentinel password", o.SentinelPassword, "spw"},
		{"password", o.Password, "pw"},
		{"db", o.DB, 2},
		{"dial timeout", o.DialTimeout, 250 * time.Millisecond},
		{"read timeout", o.ReadTimeout, 250 * time.Millisecond},
		{"write timeout", o.WriteTimeout, 250 * time.Millisecond},
		{"pool timeout", o.PoolTimeout, 250 * time.Millisecond},
		{"pool size", o.PoolSize, 7},
		{"context deadlines", o.ContextTimeoutEnabled, true},
		{"no retries", o.MaxRetries, -1},
		{"one dial per attempt", o.DialerRetries, 1},
		{"primary only", o.ReplicaOnly || o.RouteByLatency || o.RouteRandomly, false},
	})
}

func TestMayHaveRun(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"no error", nil, false},
		{"connection lost", io.EOF, true},
		{"connection reset", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, true},
		{"read timeout", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, true},
		{"dial refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, false},
		{"pool timeout", redis.ErrPoolTimeout, false},
		{"closed client", redis.ErrClosed, false},
		{"context", context.DeadlineExceeded, false},
		{"reply", redis.Nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := mayHaveRun(tc.err); got != tc.want {
				t.Errorf("mayHaveRun(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestAmbiguousFinalHidesRetryableErrors(t *testing.T) {
	hook := ambiguousFinal{}.ProcessHook(func(context.Context, redis.Cmder) error { return io.EOF })
	err := hook(context.Background(), redis.NewCmd(context.Background(), "incr", "k"))
	if err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "outcome unknown: EOF") {
		t.Fatalf("hook error = %v, want a final error that does not unwrap to io.EOF", err)
	}
	var ne net.Error
	if errors.As(err, &ne) {
		t.Fatalf("hook error %v is a net.Error, which go-redis retries", err)
	}
}

// A server that refuses connections fails a command at once: one dial, no
// retry.
func TestNewClientFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	c := NewClient(Options{Addr: addr, Timeout: 2 * time.Second})
	defer c.Close()
	start := time.Now()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("Ping of a closed port succeeded")
	}
	if d := time.Since(start); d >= 400*time.Millisecond {
		t.Errorf("Ping failed after %v; five dials 100ms apart take at least 400ms", d)
	}
}

func TestNewClientServes(t *testing.T) {
	srv := redistest.Start(t)
	c := NewClient(Options{Addr: srv.Addr, DB: 1, Timeout: time.Second})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("GET = %q, %v", v, err)
	}
	db0 := NewClient(Options{Addr: srv.Addr, Timeout: time.Second})
	defer db0.Close()
	if n, err := db0.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS k in database 0 = %d, %v; want the key in database 1 only", n, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("GET after Close = %v, want the client closed", err)
	}
}
