package proxy

import "testing"

func TestDeliveredText(t *testing.T) {
	var kept []byte
	for _, data := range []string{
		`{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{"content":"The ceremony"}}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{"content":" begins at four."}}],"usage":null}`,
		`{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"seat","arguments":"{\"table\":"}}]}}]}`,
		`{"id":"c","choices":[{"index":0,"text":" cake"}]}`,
		`{"type":"response.output_text.delta","delta":" and lemon"}`,
		`{"type":"response.completed","response":{"output_text":"not again"}}`,
		`{"error":{"message":"boom"}}`,
	} {
		kept = appendEventText(kept, []byte(data))
	}
	want := `The ceremony begins at four.seat{"table": cake and lemon`
	if got := string(kept); got != want {
		t.Errorf("delivered text %q, want %q", got, want)
	}
}
