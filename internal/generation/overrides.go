package generation

import (
	"github.com/wedsync/veil/billing"
	"github.com/wedsync/veil/config"
)

// Override is a supplier's settings changed at run time through the admin
// API, kept in the store so every replica applies them. Unset fields keep
// the config's value.
type Override struct {
	Mode                  *billing.Mode `json:"mode,omitempty"`
	Tier                  *string       `json:"tier,omitempty"`
	PreferredProvider     *string       `json:"preferred_provider,omitempty"`
	AllowPlatformFallback *bool         `json:"allow_platform_fallback,omitempty"`
}

// WithOverrides returns base with the overrides applied to its supplier
// entries (adding entries for suppliers the config does not list); with no
// overrides it returns base itself.
func WithOverrides(base *config.Config, ov map[string]Override) *config.Config {
	if len(ov) == 0 {
		return base
	}
	c := *base
	c.Suppliers.Entries = append([]config.Supplier(nil), base.Suppliers.Entries...)
	for id, o := range ov {
		i := -1
		for j := range c.Suppliers.Entries {
			if c.Suppliers.Entries[j].ID == id {
				i = j
			}
		}
		if i < 0 {
			c.Suppliers.Entries = append(c.Suppliers.Entries, config.Supplier{ID: id, Mode: c.Suppliers.DefaultMode})
			i = len(c.Suppliers.Entries) - 1
		}
		e := &c.Suppliers.Entries[i]
		if o.Mode != nil {
			e.Mode = *o.Mode
		}
		if o.Tier != nil {
			e.Tier = *o.Tier
		}
		if o.PreferredProvider != nil {
			e.PreferredProvider = *o.PreferredProvider
		}
		if o.AllowPlatformFallback != nil {
			e.AllowPlatformFallback = *o.AllowPlatformFallback
		}
	}
	return &c
}
