package console

import (
	"testing"
	"time"
)

func TestSessions(t *testing.T) {
	now := time.Date(2026, 7, 14, 9, 0, 0, 0, time.UTC)
	ss := newSessions(time.Hour, 2, func() time.Time { return now })
	a, err := ss.create("ada", RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if got := ss.get(a.id); got == nil || got.name != "ada" || got.role != RoleAdmin || got.csrf == "" || got.csrf == a.id {
		t.Fatalf("get = %+v", got)
	}
	if ss.get("nope") != nil {
		t.Error("an unknown ID has a session")
	}
	now = now.Add(time.Minute)
	b, _ := ss.create("bo", RoleViewer)
	now = now.Add(time.Minute)
	c, _ := ss.create("cy", RoleViewer) // at the bound: a, which ends first, goes
	if ss.len() != 2 || ss.get(a.id) != nil || ss.get(b.id) == nil || ss.get(c.id) == nil {
		t.Errorf("after eviction: %d sessions, a %v b %v c %v", ss.len(), ss.get(a.id) != nil, ss.get(b.id) != nil, ss.get(c.id) != nil)
	}
	now = now.Add(time.Hour)
	if ss.get(c.id) != nil {
		t.Error("an expired session is live")
	}
	ss.drop(b.id)
	if ss.len() != 0 {
		t.Errorf("%d sessions left, want 0", ss.len())
	}
}

func TestSafeNext(t *testing.T) {
	tests := []struct{ next, want string }{
		{"", "/console/providers"},
		{"/console/usage?group_by=day", "/console/usage?group_by=day"},
		{"/console/migrations/mig-1", "/console/migrations/mig-1"},
		{"https://evil.example/console/", "/console/providers"},
		{"//evil.example/console/", "/console/providers"},
		{"/console//evil.example", "/console/providers"},
		{"/console/\\evil", "/console/providers"},
		{"/console/../admin/keys", "/console/providers"},
		{"/admin/keys", "/console/providers"},
		{"/console/x\r\nSet-Cookie: a=b", "/console/providers"},
	}
	for _, tt := range tests {
		if got := safeNext(tt.next); got != tt.want {
			t.Errorf("safeNext(%q) = %q, want %q", tt.next, got, tt.want)
		}
	}
}
