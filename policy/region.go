package policy

import (
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/provider"
)

// region is a compiled Region; nil is no region.
type region struct {
	name   string
	strict bool
	// replace maps providers to their regional deployments, the members.
	replace map[*provider.Provider]*provider.Provider
	members map[*provider.Provider]bool
}

// place is the provider that serves the region's suppliers instead of pr
// with keys of source, and why: its regional deployment when it has one
// that can, else pr with reason why.
func (rg *region) place(pr *provider.Provider, source billing.KeySource, why string) (*provider.Provider, string) {
	if rg == nil {
		return pr, why
	}
	if to := rg.replace[pr]; to != nil && to != pr && usable(to, source) {
		return to, ReasonRegion
	}
	return pr, why
}

// admits reports whether pr may serve the region's suppliers: any
// provider, unless the region is strict.
func (rg *region) admits(pr *provider.Provider) bool {
	return rg == nil || !rg.strict || rg.members[pr]
}

// apply replaces the providers of the attempts by their regional
// deployments, where those serve model with the attempt's keys.
func (rg *region) apply(as []Attempt, model []byte) {
	if rg == nil {
		return
	}
	for i := range as {
		if to := rg.replace[as[i].Provider]; to != nil && to != as[i].Provider && usable(to, as[i].Source) && to.Serves(model) {
			as[i].Provider, as[i].Model, as[i].Reason = to, to.ModelFor(model), ReasonRegion
		}
	}
}

// keep drops, in place, the attempts from n on that the region does not
// admit.
func (rg *region) keep(dst []Attempt, n int) []Attempt {
	if rg == nil || !rg.strict {
		return dst
	}
	kept := n
	for i := n; i < len(dst); i++ {
		if rg.members[dst[i].Provider] {
			dst[kept] = dst[i]
			kept++
		}
	}
	return dst[:kept]
}

// refusal is the error of a plan that has nothing left: a *RegionError
// when the region is strict (a provider elsewhere might have served), else
// err.
func (rg *region) refusal(err error) error {
	if rg != nil && rg.strict {
		return &RegionError{Region: rg.name}
	}
	return err
}

// Region names a supplier's region and says whether its calls must stay
// there; "" when it has none.
func (p *Policy) Region(supplier []byte) (name string, strict bool) {
	if rg := p.regions[string(supplier)]; rg != nil {
		return rg.name, rg.strict
	}
	return "", false
}

// withoutRepeats drops, in place, the attempts from n on that repeat an
// earlier one's provider and key source, such as two providers replaced by
// one regional deployment: the repeat would only try it again.
func withoutRepeats(dst []Attempt, n int) []Attempt {
	kept := n
	for i := n; i < len(dst); i++ {
		repeat := false
		for j := n; j < kept; j++ {
			if dst[j].Provider == dst[i].Provider && dst[j].Source == dst[i].Source {
				repeat = true
				break
			}
		}
		if !repeat {
			dst[kept] = dst[i]
			kept++
		}
	}
	return dst[:kept]
}
