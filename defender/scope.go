package defender

import (
	"net/url"
	"strings"
)

// CommercialScope is the OAuth scope of the MDE API (the WindowsDefenderATP
// application) in Microsoft's commercial cloud. Microsoft documents it for
// every commercial host, geo and api.security.microsoft.com included: "Use
// https://api.securitycenter.microsoft.com as the resource or scope when
// acquiring tokens", since a token for another audience gets 403 even on
// the newer hosts (learn.microsoft.com, defender-endpoint/api,
// run-advanced-query-sample-python and exposed-apis-create-app-nativeapp,
// tip on token audience; the XSOAR and Sentinel integrations do the same).
const CommercialScope = "https://api.securitycenter.microsoft.com/.default"

// ScopeFor returns the OAuth scope for the MDE API at apiURL:
//   - a commercial host (*.microsoft.com, including the geo hosts such as
//     eu.api.security.microsoft.com): CommercialScope;
//   - a US Government host (*.securitycenter.microsoft.us): the host
//     itself, e.g. https://api-gcc.securitycenter.microsoft.us/.default
//     (GCC) or https://api-gov.securitycenter.microsoft.us/.default (GCC
//     High, DoD), as the US Government page of MDE lists them;
//   - anything else (a test fake, a proxy): scheme://host/.default.
//
// DEFENDER_SCOPE overrides it.
func ScopeFor(apiURL *url.URL) string {
	host := strings.ToLower(apiURL.Hostname())
	switch {
	case host == "microsoft.com" || strings.HasSuffix(host, ".microsoft.com"):
		return CommercialScope
	case strings.HasSuffix(host, ".securitycenter.microsoft.us"):
		return "https://" + host + "/.default"
	}
	return apiURL.Scheme + "://" + apiURL.Host + "/.default"
}
