package defender

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestErrorFieldsDecode: MDE's undocumented error fields decode whatever
// their JSON type (string, number, object, null, absent) instead of failing
// the whole action, and ErrorDetails renders them compactly.
func TestErrorFieldsDecode(t *testing.T) {
	tests := []struct {
		name   string
		fields string // JSON members after "status"
		want   string
	}{
		{"absent", ``, ""},
		{"null", `,"error":null,"errorHResult":null,"troubleshootInfo":null`, ""},
		{"strings", `,"error":"Device is offline","errorHResult":"-2147024891","troubleshootInfo":"see KB"`,
			"error: Device is offline; errorHResult: 0x80070005 (-2147024891); troubleshootInfo: see KB"},
		{"numbers", `,"error":42,"errorHResult":-2147024891,"troubleshootInfo":1.5`,
			"error: 42; errorHResult: 0x80070005 (-2147024891); troubleshootInfo: 1.5"},
		{"unsigned hresult", `,"errorHResult":2147942405`, "errorHResult: 0x80070005 (2147942405)"},
		{"object", `,"error":{"code":"X", "detail" : [1, 2]},"troubleshootInfo":{"a":{"b":null}}`,
			`error: {"code":"X","detail":[1,2]}; troubleshootInfo: {"a":{"b":null}}`},
		{"zero and empty", `,"error":"","errorHResult":0,"troubleshootInfo":{}`, "troubleshootInfo: {}"},
		{"control characters", `,"error":"line1\nline2\u202e\t end"`, "error: line1 line2 end"},
		{"secrets", `,"error":"see https://x.example/p?sig=abc now"`, "error: see https://x.example/p?[redacted] now"},
		{"huge number", `,"errorHResult":1e400`, "errorHResult: 1e400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := `{"id":"` + actionA + `","type":"Isolate","status":"Failed"` + tt.fields + `}`
			var a MachineAction
			if err := json.Unmarshal([]byte(raw), &a); err != nil {
				t.Fatalf("decode %s: %v", raw, err)
			}
			if a.ID != actionA || a.Status != StatusFailed {
				t.Fatalf("decoded %+v", a)
			}
			if got := a.ErrorDetails(); got != tt.want {
				t.Errorf("ErrorDetails() = %q, want %q", got, tt.want)
			}
			// Round trip: what the fake MDE sends is what the client reads.
			out, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			var b MachineAction
			if err := json.Unmarshal(out, &b); err != nil || b.ErrorDetails() != tt.want {
				t.Errorf("round trip %s: %v, %q", out, err, b.ErrorDetails())
			}
		})
	}
}

func TestErrorDetailsBounded(t *testing.T) {
	a := MachineAction{Error: json.RawMessage(`"` + strings.Repeat("x", 5000) + `"`),
		TroubleshootInfo: json.RawMessage(`{"k":"` + strings.Repeat("y", 5000) + `"}`)}
	if got := a.ErrorDetails(); len(got) > 2*maxErrorDetailLen+60 {
		t.Errorf("ErrorDetails is %d bytes, want it bounded", len(got))
	}
}
