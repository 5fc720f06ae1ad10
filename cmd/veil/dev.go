//go:build !sidecar

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wedsync/veil/internal/demo"
	"github.com/wedsync/veil/internal/fakeopenai"
)

// The developer subcommands, demo and fake-upstream, which carry the fake
// upstream; a build with the sidecar tag leaves them out (see sidecar.go).

const (
	demoUsage         = "  veil demo [--verbose] [--console]\n"
	fakeUpstreamUsage = "  veil fake-upstream [--listen 127.0.0.1:8081] [--latency 0] [--ttft 0] [--chunk-delay 0] [--reply-words 0] [--request-limit N] [--account ORG=KEY,...:N]\n"
)

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	verbose := fs.Bool("verbose", false, "also print veil's own log lines")
	console := fs.Bool("console", false, "keep veil running after the stories, to look at them in its console")
	if _, err := parseFlags(fs, "demo [--verbose] [--console]", args, stdout); err != nil {
		return err
	}
	opts := demo.Options{Out: stdout, Console: *console}
	if *verbose {
		opts.Log = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return demo.Run(ctx, opts)
}

func fakeUpstream(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fake-upstream", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on")
	latency := fs.Duration("latency", 0, "delay before response headers")
	ttft := fs.Duration("ttft", 0, "extra delay before the first streamed chunk")
	chunk := fs.Duration("chunk-delay", 0, "delay between streamed chunks")
	words := fs.Int("reply-words", 0, "words in every answer, one streamed chunk each (0: two to four sentences)")
	reqLimit := fs.Int("request-limit", 0, "a rate limit of its own: requests a window (0: none); x-ratelimit-* count down and a full window answers 429")
	tokLimit := fs.Int("token-limit", 0, "with --request-limit, tokens a window")
	window := fs.Duration("limit-window", time.Minute, "the rate limit's window")
	var accounts accountFlags
	fs.Var(&accounts, "account", "an organisation of its own, ORG=KEY[,KEY...][:REQUESTS]: its keys' answers name ORG in "+
		"OpenAI-Organization (anthropic-organization-id on the Messages API) and share ORG's rate limit of REQUESTS a window (repeatable)")
	if _, err := parseFlags(fs, "fake-upstream [--listen 127.0.0.1:8081] [--latency 0] [--ttft 0] [--chunk-delay 0] [--reply-words 0] [--request-limit 0 --token-limit 0 --limit-window 1m] [--account ORG=KEY,...:REQUESTS]", args, stdout); err != nil {
		return err
	}
	s := fakeopenai.New(fakeopenai.Options{Latency: *latency, TTFT: *ttft, ChunkDelay: *chunk, ReplyWords: *words, NoRecord: true,
		RequestLimit: *reqLimit, TokenLimit: *tokLimit, LimitWindow: *window, Accounts: accounts})
	if err := s.Start(*listen); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fake OpenAI upstream on %s (accepts any bearer key)\n", s.URL())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return s.Close()
}

// accountFlags are the fake upstream's --account organisations.
type accountFlags []fakeopenai.Account

func (a *accountFlags) String() string { return "" }

// Set adds one ORG=KEY[,KEY...][:REQUESTS] organisation.
func (a *accountFlags) Set(v string) error {
	org, rest, ok := strings.Cut(v, "=")
	if !ok || org == "" || rest == "" {
		return errors.New("want ORG=KEY[,KEY...][:REQUESTS]")
	}
	acct := fakeopenai.Account{Organization: org}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		n, err := strconv.Atoi(rest[i+1:])
		if err != nil || n <= 0 {
			return fmt.Errorf("requests %q: want a positive number", rest[i+1:])
		}
		acct.RequestLimit, rest = n, rest[:i]
	}
	for k := range strings.SplitSeq(rest, ",") {
		if k == "" {
			return errors.New("an empty key")
		}
		acct.Keys = append(acct.Keys, k)
	}
	*a = append(*a, acct)
	return nil
}
