package redisconn

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wedsync/veil/internal/redistest"
	"github.com/wedsync/veil/keys"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{"valid", Options{Addr: "127.0.0.1:6379", DB: 2, Timeout: time.Second, PoolSize: 4}, ""},
		{"defaults left to the caller", Options{Addr: "redis:6379"}, ""},
		{"no address", Options{}, "no address"},
		{"no port", Options{Addr: "localhost"}, `address "localhost"`},
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

func TestNewClientOptions(t *testing.T) {
	c := NewClient(Options{Addr: "127.0.0.1:6379", Password: keys.NewSecret("pw"), DB: 3,
		Timeout: 250 * time.Millisecond, PoolSize: 7})
	defer c.Close()
	o := c.Options()
	tests := []struct {
		name      string
		got, want any
	}{
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("%v, want %v", tc.got, tc.want)
			}
		})
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
