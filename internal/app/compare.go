package app

import (
	"github.com/wedsync/veil/compare"
)

// buildComparisons makes the shadow comparisons of suppliers' two systems,
// kept in the store so that every replica follows them.
func (a *App) buildComparisons() {
	a.compare = compare.New(compare.Options{Store: a.store, Log: a.log, Holder: a.holder,
		Current: locator{&a.rt}.CurrentSystem})
}
