package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxAnswerBytes bounds what Client reads of one answer.
const maxAnswerBytes = 16 << 20

// Client calls a veil admin listener with its admin token: the command
// line's status, usage and migrate commands and the demo use it.
type Client struct {
	// Base is the listener's URL ("http://127.0.0.1:9090"); paths are
	// appended to it.
	Base string
	// Token is the admin token, sent as a bearer token.
	Token string
	// HTTP is the client to send with; nil means http.DefaultClient.
	HTTP *http.Client
}

// APIError is an answer of the admin API other than 2xx.
type APIError struct {
	Status  int
	Code    string
	Message string
}

// Error returns the admin API's message with its status and code.
func (e *APIError) Error() string {
	return fmt.Sprintf("%s (admin API: %d %s)", e.Message, e.Status, e.Code)
}

// Call sends body, as JSON when it is not nil, to path with method, and
// decodes a 2xx answer's JSON into out when out is not nil. An answer
// other than 2xx is an *APIError carrying the admin API's code and
// message; a transport failure is wrapped.
func (c Client) Call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode the body of %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	// The admin URL is the operator's own (a flag or the config's
	// listen.admin), never input from a request.
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("ask veil's admin listener: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("read the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(answer, &e) != nil || e.Error.Message == "" {
			e.Error.Message = "admin listener answered " + resp.Status + ": " + strings.TrimSpace(string(answer))
		}
		return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("decode the answer of %s %s: %w", method, path, err)
	}
	return nil
}
