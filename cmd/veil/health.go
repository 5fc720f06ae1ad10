package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/wedsync/veil/config"
)

// healthTimeout bounds the readiness check.
const healthTimeout = 3 * time.Second

// healthCmd runs `veil health`: asks a running veil's admin listener
// whether it is ready (GET /readyz) and exits 0 when it is, 1 otherwise.
// It needs no curl, so a distroless image's HEALTHCHECK can run it. The
// admin address is --admin, else VEIL_ADMIN_LISTEN, else the config's
// listen.admin, else the default.
func healthCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	addr := fs.String("admin", "", "the admin listener's host:port")
	path := fs.String("config", "", "the running veil's config file (for the admin address)")
	wait := fs.Duration("wait", 0, "keep asking until veil is ready or this long has passed (for scripts that start veil)")
	output := outputFlag(fs)
	if pos, err := parseFlags(fs, "health [--admin HOST:PORT | --config FILE] [--wait 30s] [--output json]", args, stdout); err != nil {
		return err
	} else if len(pos) > 0 {
		return fmt.Errorf("%w: health takes no arguments, got %q", errUsage, pos[0])
	}
	target, err := healthAddr(*addr, *path)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	for {
		err = askReady(target)
		if err == nil || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(healthPoll)
	}
	if *output == "json" {
		doc := map[string]any{"ready": err == nil, "admin": target}
		if err != nil {
			doc["reason"] = err.Error()
		}
		if werr := writeJSONOut(stdout, doc); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	if *output != "json" {
		fmt.Fprintln(stdout, "ready")
	}
	return nil
}

// healthPoll is how often `veil health --wait` asks again.
const healthPoll = 200 * time.Millisecond

// askReady asks target's /readyz once.
func askReady(target string) error {
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+target+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s answered %d: %s", target, resp.StatusCode, body)
	}
	return nil
}

// healthAddr picks the admin address to ask, turning a wildcard host into
// loopback.
func healthAddr(flagAddr, path string) (string, error) {
	addr := flagAddr
	if addr == "" {
		addr = os.Getenv(config.EnvAdminListen)
	}
	if addr == "" && path != "" {
		cfg, err := config.Load(path)
		if err != nil {
			return "", err
		}
		addr = cfg.Listen.Admin
	}
	if addr == "" {
		addr = config.DefaultAdminListen
	}
	// An address given as a URL, as in a browser, is taken for its
	// host and port: the admin listener speaks plain HTTP.
	if u, err := url.Parse(addr); err == nil && u.Scheme == "http" && u.Host != "" && strings.Trim(u.Path, "/") == "" {
		addr = u.Host
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%w: admin address %q: want HOST:PORT, such as 127.0.0.1:9090", errUsage, addr)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
