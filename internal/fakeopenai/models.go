package fakeopenai

import (
	"encoding/json"
	"strings"

	"github.com/valyala/fasthttp"
)

// modelInfo is one entry of /v1/models.
type modelInfo struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// knownModels holds the creation time and owner OpenAI reports for common
// models.
var knownModels = map[string]modelInfo{
	"gpt-4o-mini":            {Created: 1721172741, OwnedBy: "system"},
	"gpt-4o":                 {Created: 1715367049, OwnedBy: "system"},
	"gpt-4o-2024-08-06":      {Created: 1722814719, OwnedBy: "system"},
	"gpt-4.1":                {Created: 1744316542, OwnedBy: "system"},
	"gpt-4.1-mini":           {Created: 1744318173, OwnedBy: "system"},
	"gpt-4.1-nano":           {Created: 1744321707, OwnedBy: "system"},
	"gpt-4-turbo":            {Created: 1712361441, OwnedBy: "system"},
	"gpt-4":                  {Created: 1687882411, OwnedBy: "openai"},
	"gpt-3.5-turbo":          {Created: 1677610602, OwnedBy: "openai"},
	"gpt-3.5-turbo-instruct": {Created: 1692901427, OwnedBy: "system"},
	"gpt-5":                  {Created: 1754425777, OwnedBy: "system"},
	"gpt-5-mini":             {Created: 1754425928, OwnedBy: "system"},
	"gpt-5-nano":             {Created: 1754426384, OwnedBy: "system"},
	"o1":                     {Created: 1734375816, OwnedBy: "system"},
	"o3-mini":                {Created: 1737146383, OwnedBy: "system"},
	"o4-mini":                {Created: 1744225351, OwnedBy: "system"},
	"text-embedding-3-small": {Created: 1705948997, OwnedBy: "system"},
	"text-embedding-3-large": {Created: 1705953180, OwnedBy: "system"},
	"text-embedding-ada-002": {Created: 1671217299, OwnedBy: "openai-internal"},
	"whisper-1":              {Created: 1677532384, OwnedBy: "openai-internal"},
	"gpt-4o-transcribe":      {Created: 1742068463, OwnedBy: "system"},
	"tts-1":                  {Created: 1681940951, OwnedBy: "openai-internal"},
	"dall-e-3":               {Created: 1698785189, OwnedBy: "system"},
	"omni-moderation-latest": {Created: 1731689265, OwnedBy: "system"},
}

// initModels builds the model table and the pre-rendered model list.
func (s *Server) initModels() {
	ids := s.opts.Models
	if len(ids) == 0 {
		ids = DefaultModels
	}
	s.models = make(map[string]modelInfo, len(ids))
	s.modelList = make([]modelInfo, 0, len(ids))
	for _, id := range ids {
		if _, dup := s.models[id]; dup {
			continue
		}
		m, ok := knownModels[id]
		if !ok {
			m = modelInfo{Created: 1700000000, OwnedBy: "system"}
		}
		m.ID, m.Object = id, "model"
		s.models[id] = m
		s.modelList = append(s.modelList, m)
	}
	list := struct {
		Object string      `json:"object"`
		Data   []modelInfo `json:"data"`
	}{Object: "list", Data: s.modelList}
	body, err := json.Marshal(list)
	if err != nil {
		// modelInfo only holds strings and integers.
		panic("fakeopenai: marshal models: " + err.Error())
	}
	s.modelsJSON = body
}

// checkModel answers 404 model_not_found for a model not served, unless
// Options.AllowUnknownModels is set or the model is that of an Azure
// deployment (deployed is true).
func (s *Server) checkModel(model string, deployed bool) *apiError {
	if s.opts.AllowUnknownModels || deployed {
		return nil
	}
	if _, ok := s.models[model]; ok {
		return nil
	}
	return errModelNotFound(model)
}

// model serves GET /v1/models/{id}.
func (s *Server) model(ctx *fasthttp.RequestCtx, c *call) {
	id := strings.TrimPrefix(string(ctx.Path()), "/v1/models/")
	m, ok := s.models[id]
	if !ok {
		s.writeError(ctx, c, apiError{
			status:  fasthttp.StatusNotFound,
			message: "The model '" + id + "' does not exist",
			typ:     "invalid_request_error",
			param:   "model",
			code:    "model_not_found",
		})
		return
	}
	body, err := json.Marshal(m)
	if err != nil {
		panic("fakeopenai: marshal model: " + err.Error())
	}
	s.writeJSON(ctx, c, body)
}
