package proxy

import (
	"encoding/json"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		method, suffix string
		want           endpoint
	}{
		{"POST", "/chat/completions", epChat},
		{"POST", "/completions", epCompletions},
		{"POST", "/embeddings", epEmbeddings},
		{"POST", "/responses", epResponses},
		{"GET", "/models", epModels},
		{"GET", "/models/gpt-4o-mini", epModels},
		{"GET", "/chat/completions", epOther},
		{"POST", "/audio/transcriptions", epOther},
		{"DELETE", "/models/ft-123", epOther},
		{"POST", "/responses/resp_1/cancel", epOther},
	}
	for _, tc := range cases {
		t.Run(tc.method+tc.suffix, func(t *testing.T) {
			if got := classify([]byte(tc.method), []byte(tc.suffix)); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDropRequestHeader(t *testing.T) {
	cases := []struct {
		key        string
		understood bool
		drop       bool
	}{
		{"Authorization", false, true},
		{"Api-Key", false, true},
		{"X-Api-Key", false, true},
		{"Openai-Organization", false, true},
		{"Openai-Project", false, true},
		{"Connection", false, true},
		{"Transfer-Encoding", false, true},
		{"X-Veil-Anything", false, true},
		{"X-Supplier-Id", false, true},
		{"Accept-Encoding", true, true},
		{"Accept-Encoding", false, false},
		{"Openai-Beta", false, false},
		{"User-Agent", false, false},
		{"X-Request-Id", false, false},
	}
	for _, tc := range cases {
		if got := dropRequestHeader([]byte(tc.key), tc.understood); got != tc.drop {
			t.Errorf("%s (understood %v): drop = %v, want %v", tc.key, tc.understood, got, tc.drop)
		}
	}
}

func TestConnectionTokensDropped(t *testing.T) {
	var src, dst fasthttp.RequestHeader
	src.SetMethod("POST")
	src.Set("Connection", "keep-alive, X-Secret-Hop")
	src.Set("X-Secret-Hop", "1")
	src.Set("X-Kept", "1")
	copyRequestHeaders(&dst, &src, true)
	if len(dst.Peek("X-Secret-Hop")) != 0 || string(dst.Peek("X-Kept")) != "1" {
		t.Errorf("headers after copy: %s", dst.String())
	}
}

func TestEnvelopeIsOpenAIShape(t *testing.T) {
	e := &Error{Status: 400, Type: typeInvalidRequest, Code: "invalid_type", Param: "stream",
		Message: "bad \"quote\" \\ <tag> \n\x01 \xff ünïcode"}
	var got struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	raw := e.AppendEnvelope(nil)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("invalid JSON %s: %v", raw, err)
	}
	if got.Error.Message != "bad \"quote\" \\ <tag> \n\x01 \ufffd ünïcode" || *got.Error.Param != "stream" || *got.Error.Code != "invalid_type" {
		t.Errorf("round trip: %+v", got.Error)
	}
	raw = (&Error{Message: "m", Type: typeServer}).AppendEnvelope(nil)
	if string(raw) != `{"error":{"message":"m","type":"server_error","param":null,"code":null}}` {
		t.Errorf("nulls: %s", raw)
	}
}

func TestValidRequestID(t *testing.T) {
	for id, want := range map[string]bool{
		"": false, "abc-123": true, "req_1.2:3": true, "has space": false, "ctl\x01": false,
		string(make([]byte, 129)): false,
	} {
		if got := validRequestID([]byte(id)); got != want {
			t.Errorf("%q: %v", id, got)
		}
	}
}
