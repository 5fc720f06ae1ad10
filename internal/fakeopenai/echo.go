package fakeopenai

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"sort"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/wedsync/veil/internal/tokencount"
)

// echoReply is the answer of the catch-all /v1/* route.
type echoReply struct {
	Object      string              `json:"object"`
	Method      string              `json:"method"`
	Path        string              `json:"path"`
	Query       string              `json:"query"`
	ContentType string              `json:"content_type"`
	BodyLength  int                 `json:"body_length"`
	BodySHA256  string              `json:"body_sha256"`
	Form        map[string][]string `json:"form,omitempty"`
	Files       []echoFile          `json:"files,omitempty"`
}

// echoFile describes an uploaded multipart file.
type echoFile struct {
	Field    string `json:"field"`
	Filename string `json:"filename"`
	Size     int64  `json:"size"`
}

// echo serves any other /v1/* call with a JSON description of what it got,
// so that pass-through can be tested: method, path, query, content type,
// body length and SHA-256, and the fields and files of a multipart form.
func (s *Server) echo(ctx *fasthttp.RequestCtx, c *call) {
	body := ctx.Request.Body()
	sum := sha256.Sum256(body)
	r := echoReply{
		Object:      "echo",
		Method:      string(ctx.Method()),
		Path:        string(ctx.Path()),
		Query:       string(ctx.URI().QueryString()),
		ContentType: string(ctx.Request.Header.ContentType()),
		BodyLength:  len(body),
		BodySHA256:  hex.EncodeToString(sum[:]),
	}
	if form, err := ctx.MultipartForm(); err == nil {
		r.Form = form.Value
		for _, field := range sortedKeys(form.File) {
			for _, fh := range form.File[field] {
				r.Files = append(r.Files, echoFile{Field: field, Filename: fh.Filename, Size: fh.Size})
			}
		}
	}
	out, err := json.Marshal(&r)
	if err != nil {
		s.writeError(ctx, c, apiError{status: fasthttp.StatusInternalServerError, message: err.Error(), typ: "server_error"})
		return
	}
	s.writeJSON(ctx, c, out)
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// audio serves POST /v1/audio/transcriptions and /v1/audio/translations from
// a multipart form. The text is a deterministic function of the model and the
// uploaded file.
func (s *Server) audio(ctx *fasthttp.RequestCtx, c *call) {
	form, err := ctx.MultipartForm()
	if err != nil {
		s.writeError(ctx, c, *invalidRequest("", "", "Could not parse multipart form"))
		return
	}
	model := formValue(form, "model")
	if model == "" {
		s.writeError(ctx, c, *errMissingModel())
		return
	}
	files := form.File["file"]
	if len(files) == 0 {
		s.writeError(ctx, c, *errMissingParam("file"))
		return
	}
	if e := s.checkModel(model, false); e != nil {
		s.writeError(ctx, c, *e)
		return
	}
	fh := files[0]
	h, err := hashFile(newTextStats(model).hash, fh)
	if err != nil {
		s.writeError(ctx, c, *invalidRequest("file", "", err.Error()))
		return
	}
	text := joinWords(generate(h, 0, 0, tokencount.Encoding{}).words)
	task := "transcribe"
	if strings.HasSuffix(string(ctx.Path()), "/translations") {
		task = "translate"
	}
	duration := float64(fh.Size) / 32000 // 16 kHz, 16-bit mono
	switch format := formValue(form, "response_format"); format {
	case "", "json":
		s.writeJSONValue(ctx, c, struct {
			Text string `json:"text"`
		}{text})
	case "verbose_json":
		s.writeJSONValue(ctx, c, struct {
			Task     string  `json:"task"`
			Language string  `json:"language"`
			Duration float64 `json:"duration"`
			Text     string  `json:"text"`
			Segments []any   `json:"segments"`
		}{task, "english", duration, text, []any{}})
	case "text", "srt", "vtt":
		end := formatTimestamp(duration, format == "vtt")
		switch format {
		case "srt":
			text = "1\n" + formatTimestamp(0, false) + " --> " + end + "\n" + text + "\n\n"
		case "vtt":
			text = "WEBVTT\n\n" + formatTimestamp(0, true) + " --> " + end + "\n" + text + "\n\n"
		default:
			text += "\n"
		}
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentType("text/plain; charset=utf-8")
		s.setHeaders(ctx, c, -1)
		ctx.SetBodyString(text)
	default:
		s.writeError(ctx, c, *errInvalidValue("response_format", format))
	}
}

// writeJSONValue marshals v and writes it with status 200.
func (s *Server) writeJSONValue(ctx *fasthttp.RequestCtx, c *call, v any) {
	out, err := json.Marshal(v)
	if err != nil {
		s.writeError(ctx, c, apiError{status: fasthttp.StatusInternalServerError, message: err.Error(), typ: "server_error"})
		return
	}
	s.writeJSON(ctx, c, out)
}

// formValue returns the first value of a form field.
func formValue(form *multipart.Form, name string) string {
	if v := form.Value[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// hashFile folds the name and content of an uploaded file into h.
func hashFile(h uint64, fh *multipart.FileHeader) (uint64, error) {
	f, err := fh.Open()
	if err != nil {
		return 0, fmt.Errorf("open uploaded file: %w", err)
	}
	defer f.Close()
	h = fnvString(h, fh.Filename)
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		h = fnvBytes(h, buf[:n])
		if errors.Is(err, io.EOF) {
			return h, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read uploaded file: %w", err)
		}
	}
}

// formatTimestamp formats seconds as an SRT (00:00:01,500) or WebVTT
// (00:00:01.500) timestamp.
func formatTimestamp(sec float64, vtt bool) string {
	ms := int64(sec * 1000)
	sep := ","
	if vtt {
		sep = "."
	}
	two := func(n int64) string {
		if n < 10 {
			return "0" + strconv.FormatInt(n, 10)
		}
		return strconv.FormatInt(n, 10)
	}
	frac := strconv.FormatInt(ms%1000+1000, 10)[1:]
	return two(ms/3600000) + ":" + two(ms/60000%60) + ":" + two(ms/1000%60) + sep + frac
}
