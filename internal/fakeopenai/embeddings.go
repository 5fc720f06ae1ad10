package fakeopenai

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
)

// embeddingDims returns the default vector size of model.
func embeddingDims(model string) int {
	if model == "text-embedding-3-large" {
		return 3072
	}
	return 1536
}

// embeddings serves POST /v1/embeddings. Vectors are unit-length and a
// deterministic function of the model and the input text: built from the
// text's concepts (see meaningVector), so that paraphrases are close,
// texts sharing part of their content less so and unrelated texts far
// apart; a text without content words (or given as tokens) gets a random
// vector of its own.
func (s *Server) embeddings(ctx *fasthttp.RequestCtx, c *call) {
	root, e := parseRoot(requestBody(ctx))
	if e == nil {
		var inputs []textStats
		var model, format string
		var dims int
		if inputs, model, format, dims, e = s.parseEmbeddings(root, c.model); e == nil {
			bp := getBuf()
			*bp = appendEmbeddings(*bp, inputs, model, format, dims)
			s.writeJSON(ctx, c, *bp)
			putBuf(bp)
			return
		}
	}
	s.writeError(ctx, c, *e)
}

// parseEmbeddings validates an embeddings request.
func (s *Server) parseEmbeddings(root gjson.Result, deployed string) (inputs []textStats, model, format string, dims int, e *apiError) {
	if model, e = requireModel(root, deployed); e != nil {
		return nil, "", "", 0, e
	}
	in := root.Get("input")
	if !present(in) {
		return nil, "", "", 0, errMissingParam("input")
	}
	if inputs, e = parseTexts(in, model, "input"); e != nil {
		return nil, "", "", 0, e
	}
	format = "float"
	if f := root.Get("encoding_format"); present(f) {
		if f.Str != "float" && f.Str != "base64" {
			return nil, "", "", 0, errInvalidValue("encoding_format", f.String())
		}
		format = f.Str
	}
	dims = embeddingDims(model)
	if d := root.Get("dimensions"); present(d) {
		if model == "text-embedding-ada-002" {
			return nil, "", "", 0, invalidRequest("dimensions", "", "This model does not support specifying dimensions.")
		}
		v, e := optInt(root, "dimensions", 0, 1, int64(dims))
		if e != nil {
			return nil, "", "", 0, e
		}
		dims = int(v)
	}
	if e := s.checkModel(model, deployed != ""); e != nil {
		return nil, "", "", 0, e
	}
	return inputs, model, format, dims, nil
}

// embedding returns the unit vector of the given size for seed.
func embedding(seed uint64, dims int) []float32 {
	v := make([]float32, dims)
	x := seed
	var norm float64
	for i := range v {
		f := float64(int64(splitmix(&x)>>11))/(1<<52) - 1 // [-1, 1)
		v[i] = float32(f)
		norm += f * f
	}
	if norm == 0 {
		norm = 1
	}
	inv := 1 / math.Sqrt(norm)
	for i := range v {
		v[i] = float32(float64(v[i]) * inv)
	}
	return v
}

// appendEmbeddings appends the embeddings response.
func appendEmbeddings(b []byte, inputs []textStats, model, format string, dims int) []byte {
	b = append(b, `{"object":"list","data":[`...)
	words := 0
	var raw []byte
	for i, in := range inputs {
		words += in.tokens
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = appendInt(b, int64(i))
		b = append(b, `,"embedding":`...)
		v, ok := meaningVector(model, in.text, dims, in.hash)
		if !ok {
			v = embedding(in.hash, dims)
		}
		if format == "base64" {
			raw = raw[:0]
			for _, f := range v {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = append(b, '[')
			for j, f := range v {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	words = max(words, 1)
	b = append(b, `],"model":`...)
	b = appendJSONString(b, model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = appendInt(b, int64(words))
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, int64(words))
	return append(b, "}}"...)
}
