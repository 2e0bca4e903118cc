package defender

import (
	"net/url"
	"testing"
)

func TestScopeFor(t *testing.T) {
	tests := []struct{ api, want string }{
		{"https://api.securitycenter.microsoft.com", CommercialScope},
		{"https://api.security.microsoft.com", CommercialScope},
		{"https://eu.api.security.microsoft.com", CommercialScope},
		{"https://us.api.security.microsoft.com/", CommercialScope},
		{"https://api-eu.securitycenter.microsoft.com", CommercialScope},
		{"https://API.Security.Microsoft.com", CommercialScope},
		{"https://api-gcc.securitycenter.microsoft.us", "https://api-gcc.securitycenter.microsoft.us/.default"},
		{"https://api-gov.securitycenter.microsoft.us", "https://api-gov.securitycenter.microsoft.us/.default"},
		{"https://127.0.0.1:8443", "https://127.0.0.1:8443/.default"},
		{"https://notmicrosoft.com", "https://notmicrosoft.com/.default"},
		{"https://microsoft.com.evil.example", "https://microsoft.com.evil.example/.default"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.api)
		if err != nil {
			t.Fatal(err)
		}
		if got := ScopeFor(u); got != tt.want {
			t.Errorf("ScopeFor(%s) = %s, want %s", tt.api, got, tt.want)
		}
	}
}
