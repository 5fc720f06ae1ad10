package console

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync"
	"time"
)

// session is one signed-in browser: who it is, its CSRF token and when it
// ends. Its ID, the cookie's value, is random and holds nothing.
type session struct {
	id      string
	name    string
	role    string
	csrf    string
	expires time.Time
}

// sessions holds the console's sessions in memory: a restart, or another
// replica, asks for a new login.
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	ttl time.Duration
	max int
	now func() time.Time
}

func newSessions(ttl time.Duration, maxSessions int, now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, ttl: ttl, max: maxSessions, now: now}
}

// create starts a session for name with role. When the sessions are at
// their bound, the expired ones go, then the one that ends first.
func (ss *sessions) create(name, role string) (*session, error) {
	id, err := randomToken()
	if err != nil {
		return nil, err
	}
	csrf, err := randomToken()
	if err != nil {
		return nil, err
	}
	now := ss.now()
	s := &session{id: id, name: name, role: role, csrf: csrf, expires: now.Add(ss.ttl)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= ss.max {
		var first *session
		for k, o := range ss.m {
			if !now.Before(o.expires) {
				delete(ss.m, k)
				continue
			}
			if first == nil || o.expires.Before(first.expires) {
				first = o
			}
		}
		if len(ss.m) >= ss.max && first != nil {
			delete(ss.m, first.id)
		}
	}
	ss.m[id] = s
	cp := *s
	return &cp, nil
}

// get returns a copy of the live session with ID id, or nil.
func (ss *sessions) get(id string) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.m[id]
	if !ok {
		return nil
	}
	if !ss.now().Before(s.expires) {
		delete(ss.m, id)
		return nil
	}
	cp := *s
	return &cp
}

// drop ends the session with ID id, if there is one.
func (ss *sessions) drop(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// len returns the number of sessions held, expired ones included.
func (ss *sessions) len() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.m)
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("console: random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
