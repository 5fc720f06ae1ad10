package proxy

import "testing"

// TestInflight: each supplier has its own count per provider, the cap
// refuses only the supplier at it, and released slots can be taken again.
func TestInflight(t *testing.T) {
	var f inflight
	bella := inflightKey{provider: "openai", supplier: "bella"}
	rose := inflightKey{provider: "openai", supplier: "rose"}
	bellaAzure := inflightKey{provider: "azure", supplier: "bella"}
	for i := range 3 {
		if !f.acquire(bella, 3) {
			t.Fatalf("slot %d refused below the cap", i+1)
		}
	}
	if f.acquire(bella, 3) {
		t.Error("a fourth slot was given at a cap of 3")
	}
	if !f.acquire(rose, 3) || !f.acquire(bellaAzure, 3) {
		t.Error("another supplier, or another provider, was refused because of bella's calls")
	}
	f.release(bella)
	if !f.acquire(bella, 3) {
		t.Error("a released slot could not be taken again")
	}
	if !f.acquire(bella, 0) {
		t.Error("no cap refused a call")
	}
	allocs := testing.AllocsPerRun(100, func() {
		f.acquire(rose, 0)
		f.release(rose)
	})
	if allocs != 0 {
		t.Errorf("%v allocations to take and give back a known supplier's slot", allocs)
	}
}
