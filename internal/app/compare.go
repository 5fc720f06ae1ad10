package app

import (
	"github.com/wedsync/veil/migrate"
	"github.com/wedsync/veil/proxy"
)

// buildComparisons makes the shadow comparisons of suppliers' two systems,
// kept in the store so that every replica follows them.
func (a *App) buildComparisons() {
	a.compare = migrate.NewComparisons(migrate.CompareOptions{Store: a.store, Log: a.log, Holder: a.holder,
		Current: locator{&a.rt}.CurrentSystem})
}

// shadows adapts the comparisons to the proxy.
type shadows struct{ c *migrate.Comparisons }

var _ proxy.Shadows = shadows{}

func (s shadows) Shadow(supplier []byte, spread uint64) (string, string, bool) {
	return s.c.Shadow(supplier, spread)
}

func (s shadows) Lookup(id string) (proxy.ShadowSettings, bool) {
	r, ok := s.c.Lookup(id)
	return proxy.ShadowSettings{Provider: r.Provider, Billed: r.Billed}, ok
}

func (s shadows) Record(id string, primary, shadow proxy.ShadowOutcome) {
	s.c.Record(id, migrate.Outcome(primary), migrate.Outcome(shadow))
}
