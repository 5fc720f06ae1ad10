package vaulttest

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// relistenTimeout bounds how long unblock tries to listen on the proxy's
// port again.
const relistenTimeout = 5 * time.Second

// proxy is a TCP proxy to target that can be blocked: blocking closes the
// listener and every connection, so that Vault looks down (connection
// refused) until unblock listens on the same address again.
type proxy struct {
	addr   string // host:port the proxy listens on
	target string

	mu      sync.Mutex
	ln      net.Listener // nil while blocked
	conns   map[net.Conn]struct{}
	blocked bool
	closed  bool
	wg      sync.WaitGroup
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p := &proxy{addr: ln.Addr().String(), target: target, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve(ln)
	return p, nil
}

// serve accepts connections on ln until it is closed.
func (p *proxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.blocked || p.closed {
			p.mu.Unlock()
			conn.Close()
			continue
		}
		p.conns[conn] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.handle(conn)
	}
}

// handle pipes conn to a new connection to the target.
func (p *proxy) handle(conn net.Conn) {
	defer p.wg.Done()
	defer p.forget(conn)
	d := net.Dialer{Timeout: 5 * time.Second}
	up, err := d.DialContext(context.Background(), "tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.forget(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, conn)
	go pipe(conn, up)
	<-done // one side ended: end both
	conn.Close()
	up.Close()
	<-done
}

// track registers conn unless the proxy is blocked or closed.
func (p *proxy) track(conn net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blocked || p.closed {
		return false
	}
	p.conns[conn] = struct{}{}
	return true
}

// forget closes and unregisters conn.
func (p *proxy) forget(conn net.Conn) {
	conn.Close()
	p.mu.Lock()
	delete(p.conns, conn)
	p.mu.Unlock()
}

// block stops listening and closes every connection.
func (p *proxy) block() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shut()
	p.blocked = true
}

// shut closes the listener and the connections; p.mu is held.
func (p *proxy) shut() {
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// unblock listens on the proxy's address again.
func (p *proxy) unblock() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.blocked || p.closed {
		return nil
	}
	deadline := time.Now().Add(relistenTimeout)
	for {
		ln, err := net.Listen("tcp", p.addr)
		if err == nil {
			p.ln = ln
			p.blocked = false
			p.wg.Add(1)
			go p.serve(ln)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("proxy: listening on %s again: %w", p.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// close shuts the proxy down and waits for its goroutines.
func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.shut()
	p.mu.Unlock()
	p.wg.Wait()
}
