package mix

import "testing"

func TestMix64(t *testing.T) {
	// Known outputs of splitmix64 seeded with 0: the first value is
	// Mix64(Gamma).
	if got := Mix64(Gamma); got != 0xe220a8397b1dcdaf {
		t.Errorf("Mix64(Gamma) = %#x", got)
	}
	g := uint64(Gamma)
	if got := Mix64(g + g); got != 0x6e789e6aa1b965f4 {
		t.Errorf("Mix64(2*Gamma) = %#x", got)
	}
	if Mix64(0) != 0 {
		t.Error("Mix64(0) is not 0")
	}
}
