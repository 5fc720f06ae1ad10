package alert

import (
	"time"

	"github.com/wedsync/veil/health"
)

// Sources of an event: which of veil's checks or processes saw it.
const (
	// SourceProbe marks a provider's change that active probes saw.
	SourceProbe = health.SourceProbe
	// SourceBreaker marks a provider's change that its circuit breaker
	// saw.
	SourceBreaker = health.SourceBreaker
	// SourceSupplierKey marks a change of one supplier's own key: the
	// provider refused it and the supplier's calls fall back to platform
	// keys (down), or it was accepted again (up).
	SourceSupplierKey = health.SourceSupplierKey
	// SourceMigration marks a step of a supplier's migration between
	// platform keys and its own.
	SourceMigration = "migration"
)

// Event is one thing operators are told about: a provider, or a
// supplier's own key, that went down or came back, or a step of a
// supplier's migration.
type Event struct {
	// Source is SourceProbe, SourceBreaker, SourceSupplierKey or
	// SourceMigration.
	Source string
	// Provider is the provider the event is about; empty in a migration
	// event.
	Provider string
	// Supplier is the supplier whose own key or migration the event is
	// about; empty otherwise.
	Supplier string
	// Kind names a migration event, such as migration_failed; empty
	// otherwise.
	Kind string
	// Up is the provider's or the key's new state.
	Up bool
	// Breaker is the breaker's new state (closed or open) in a breaker or
	// supplier-key event.
	Breaker string
	// Cause says why the provider went down, or what happened in a
	// migration; empty when a provider came back.
	Cause string
	At    time.Time
}

// subject is what the event is about within its source and supplier: the
// migration event's kind, else the provider.
func (e *Event) subject() string {
	if e.Kind != "" {
		return e.Kind
	}
	return e.Provider
}

// FromHealth returns the event of a change that probes or breakers saw.
func FromHealth(a health.Alert) Event {
	return Event{Source: a.Source, Provider: a.Target, Supplier: a.Supplier, Up: a.Up, Breaker: a.Breaker,
		Cause: a.Cause, At: a.At}
}

// Health logs and sends a change that probes or breakers saw, as Notify
// does; it is what health's Alert and OnChange hooks take.
func (n *Notifier) Health(a health.Alert) { n.Notify(FromHealth(a)) }

// Migration logs and sends a step of a supplier's migration, as Notify
// does; it is what migrate.Options.Alert takes.
func (n *Notifier) Migration(kind, supplier, message string) {
	n.Notify(Event{Source: SourceMigration, Kind: kind, Supplier: supplier, Cause: message, At: n.now()})
}
