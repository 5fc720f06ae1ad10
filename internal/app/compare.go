package app

import (
	"fmt"
	"time"

	"github.com/wedsync/veil/compare"
	"github.com/wedsync/veil/config"
	"github.com/wedsync/veil/forecast"
)

// buildComparisons makes the shadow comparisons of suppliers' two systems,
// kept in the store so that every replica follows them; their reports
// project cost from the store's usage aggregates, with the config's peak
// season.
func (a *App) buildComparisons() {
	a.compare = compare.New(compare.Options{Store: a.store, Log: a.log, Holder: a.holder,
		Current: locator{&a.rt}.CurrentSystem, Usage: a.store,
		Season: func() (string, func(time.Time) bool) { return peakSeason(a.rt.Load().Config) }})
}

// peakSeason returns the season a comparison's projection treats as the
// peak: the first season of cfg whose name says peak, else March to
// October.
func peakSeason(cfg *config.Config) (string, func(time.Time) bool) {
	if s, ok := cfg.PeakSeason(); ok {
		return fmt.Sprintf("%q, %s to %s (the config's season)", s.Name, s.From, s.To), s.Active
	}
	return "March to October (no season in the config is named peak)", forecast.PeakMarchToOctober
}
