//go:build sidecar

package main

import (
	"errors"
	"io"
)

// The sidecar build (go build -tags sidecar, as the image and make build
// are built) has no demo and no fake upstream: the subcommands that need
// them say where to find them instead.

const (
	demoUsage         = ""
	fakeUpstreamUsage = ""
)

// errNoDemo answers demo in the sidecar build.
var errNoDemo = errors.New("this build of veil has no demo; run `go run ./cmd/veil demo` from a checkout")

// errNoFakeUpstream answers fake-upstream in the sidecar build.
var errNoFakeUpstream = errors.New("this build of veil has no fake upstream; run `go run ./cmd/veil fake-upstream` from a checkout")

func runDemo([]string, io.Writer, io.Writer) error { return errNoDemo }

func fakeUpstream([]string, io.Writer) error { return errNoFakeUpstream }
