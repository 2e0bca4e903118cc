package defender

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// maxErrorDetailLen bounds each rendered field of ErrorDetails: the
// fields are foreign text that ends up on a chat card.
const maxErrorDetailLen = 300

// ErrorDetails renders MDE's undocumented error fields (error,
// errorHResult, troubleshootInfo) for a person, compactly, e.g.
//
//	error: Device is offline; errorHResult: 0x80070005 (-2147024891); troubleshootInfo: {"step":"x"}
//
// A string shows as its text, a number as itself (an HRESULT also in hex),
// anything else as compact JSON. Fields that are absent, null, "" or 0 are
// left out; "" means none is present. The result is bounded, has no
// control characters, URL queries or tokens, but is not escaped for Slack.
func (a MachineAction) ErrorDetails() string {
	var parts []string
	for _, f := range []struct {
		name    string
		raw     json.RawMessage
		hresult bool
	}{
		{"error", a.Error, false},
		{"errorHResult", a.ErrorHResult, true},
		{"troubleshootInfo", a.TroubleshootInfo, false},
	} {
		if v := renderRaw(f.raw, f.hresult); v != "" {
			parts = append(parts, f.name+": "+v)
		}
	}
	return strings.Join(parts, "; ")
}

// renderRaw renders one raw JSON value; "" when it carries nothing.
func renderRaw(raw json.RawMessage, hresult bool) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	switch raw[0] {
	case '"':
		if json.Unmarshal(raw, &s) != nil {
			s = string(raw)
		}
		if hresult {
			if n, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64); err == nil {
				s = renderHResult(n)
			}
		}
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		s = string(raw)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			s = strconv.FormatInt(n, 10)
			if hresult {
				s = renderHResult(n)
			}
		}
	default:
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			s = b.String()
		} else {
			s = string(raw)
		}
	}
	// One line, without control or invisible format characters (bidi
	// overrides, zero-width): compact, and nothing can disguise the text.
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
	}), " ")
	if s == "0" || s == "" {
		return ""
	}
	return truncate(redact(s), maxErrorDetailLen)
}

// renderHResult shows an HRESULT as Windows tools print it (0x80070005)
// with the decimal MDE sent; 0 (S_OK) carries nothing.
func renderHResult(n int64) string {
	switch {
	case n == 0:
		return ""
	case n >= math.MinInt32 && n <= math.MaxUint32:
		return fmt.Sprintf("0x%08X (%d)", uint32(n), n)
	}
	return strconv.FormatInt(n, 10)
}
