package defender

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestTokenFailuresAreSanitised proves a failing token endpoint gives an
// actionable error of the right kind that never carries the secret, the
// echoed body or a token, in the error or the logs, and that no MDE call
// is made without a token.
func TestTokenFailuresAreSanitised(t *testing.T) {
	echo := `client_secret=` + url.QueryEscape(testSecret) + ` raw ` + testSecret + ` token ` + testToken
	tests := []struct {
		name      string
		status    int
		body      string
		kind      error
		code      string
		target    string
		textHas   []string
		textLacks []string
	}{
		{"invalid client echoing the secret", 401,
			`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. ` + echo + `","error_codes":[7000215],"trace_id":"tr-1","correlation_id":"corr-aad-1"}`,
			ErrUnauthorized, "invalid_client", "corr-aad-1", []string{"AADSTS7000215", "AZURE_", "HTTP 401"}, []string{"Invalid client secret provided"}},
		{"bad tenant, plain text body", 400, "tenant not found; you sent " + echo,
			ErrUnauthorized, "", "", []string{"AZURE_"}, []string{"tenant not found"}},
		{"code only in error_codes", 400, `{"error":"unauthorized_client","error_codes":[700016]}`,
			ErrUnauthorized, "unauthorized_client", "", []string{"AADSTS700016"}, nil},
		{"azure ad failing", 503, `{"error":"temporarily_unavailable","error_description":"` + echo + `"}`,
			ErrUnavailable, "temporarily_unavailable", "", []string{"HTTP 503"}, nil},
		{"200 with error field", 200, `{"error":"invalid_request","error_description":"AADSTS90002 ` + echo + `"}`,
			ErrUnauthorized, "", "", []string{"AZURE_"}, []string{"AADSTS90002"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, "{}") }, nil)
			e.auth.setFail(func(w http.ResponseWriter) bool {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
				return true
			})
			tokErr := e.client.Token(context.Background())
			_, callErr := e.client.Isolate(context.Background(), nil, machineA, Full, "c")
			for _, err := range []error{tokErr, callErr} {
				var ae *APIError
				if !errors.As(err, &ae) || !errors.Is(err, tt.kind) {
					t.Fatalf("err = %v, want *APIError of kind %v", err, tt.kind)
				}
				if ae.Code != tt.code || ae.Target != tt.target {
					t.Errorf("code %q target %q, want %q %q", ae.Code, ae.Target, tt.code, tt.target)
				}
				text := err.Error()
				mustNotContainSecrets(t, "error", text)
				for _, s := range tt.textHas {
					if !strings.Contains(text, s) {
						t.Errorf("error %q lacks %q", text, s)
					}
				}
				for _, s := range tt.textLacks {
					if strings.Contains(text, s) {
						t.Errorf("error %q repeats the authority's free text %q", text, s)
					}
				}
			}
			mustNotContainSecrets(t, "logs", e.logs.String())
			if n := len(e.mde.requests()); n != 0 {
				t.Errorf("MDE got %d requests without a token", n)
			}
		})
	}
}

// TestAuthorityUnreachable proves a dead Azure AD is ErrUnavailable.
func TestAuthorityUnreachable(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.auth.srv.Close()
	err := e.client.Token(context.Background())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	mustNotContainSecrets(t, "error", err.Error())
}

// TestNoSecretsInLogsOrErrors runs successes, MDE errors (one echoing the
// token), retries and a timeout with debug logging on, and proves neither
// the logs nor any error holds the secret or the token.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 1:
			reply(w, 200, `{"id":"`+machineA+`"}`)
		case 2:
			reply(w, 403, mdeError("Forbidden", "token "+testToken+" lacks Machine.Isolate; see https://x.example/a?sig="+testSecret, "c"))
		case 3, 4, 5:
			reply(w, 500, mdeError("InternalServerError", r.Header.Get("Authorization"), "c"))
		default:
			<-r.Context().Done()
		}
	}, nil)
	ctx := context.Background()
	var errs []error
	_, err := e.client.Machine(ctx, machineA)
	errs = append(errs, err)
	_, err = e.client.Isolate(ctx, nil, machineA, Full, "c")
	errs = append(errs, err)
	_, err = e.client.MachineAction(ctx, actionA) // 500 three times
	errs = append(errs, err)
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = e.client.Unisolate(tctx, nil, machineA, "c")
	errs = append(errs, err)

	if errs[0] != nil {
		t.Fatalf("first call: %v", errs[0])
	}
	for i, err := range errs[1:] {
		if err == nil {
			t.Fatalf("call %d: want an error", i+2)
		}
		mustNotContainSecrets(t, "error", err.Error())
	}
	if !errors.Is(errs[1], ErrForbidden) || !strings.Contains(errs[1].Error(), "Machine.Isolate") {
		t.Errorf("403 error %q should keep the missing role", errs[1])
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"status":403`) {
		t.Errorf("logs miss the requests: %s", logs)
	}
	mustNotContainSecrets(t, "logs", logs)
}

// selfSigned makes a certificate and RSA key PEM as a customer would
// upload to the app registration.
func selfSigned(t *testing.T) (pemBytes []byte, cert *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "isolate-bot"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	return pemBytes, cert
}

// TestCertificateCredential proves a certificate credential sends a client
// assertion signed by the key, naming the certificate, and no secret.
func TestCertificateCredential(t *testing.T) {
	pemBytes, cert := selfSigned(t)
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 200, `{"id":"`+machineA+`"}`) },
		func(c *Config) { c.ClientSecret = ""; c.CertificatePEM = pemBytes })
	if _, err := e.client.Machine(context.Background(), machineA); err != nil {
		t.Fatalf("Machine: %v", err)
	}
	form := e.auth.lastForm(t)
	if len(form["client_secret"]) != 0 {
		t.Errorf("a certificate client sent client_secret")
	}
	if got := form["client_assertion_type"]; len(got) != 1 || got[0] != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		t.Errorf("client_assertion_type = %v", got)
	}
	parts := strings.Split(form["client_assertion"][0], ".")
	if len(parts) != 3 {
		t.Fatalf("client_assertion is not a JWT")
	}
	hdrJSON, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var hdr map[string]any
	if err := json.Unmarshal(hdrJSON, &hdr); err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	thumb := sha256.Sum256(cert.Raw)
	if hdr["x5t#S256"] != base64.StdEncoding.EncodeToString(thumb[:]) {
		t.Errorf("JWT header %v does not name the certificate", hdr)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	pub := cert.PublicKey.(*rsa.PublicKey)
	var verr error
	switch hdr["alg"] {
	case "PS256":
		verr = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	case "RS256":
		verr = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	default:
		t.Fatalf("unexpected alg %v", hdr["alg"])
	}
	if verr != nil {
		t.Errorf("client assertion signature does not verify with the certificate: %v", verr)
	}
	claimsJSON, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	_ = json.Unmarshal(claimsJSON, &claims)
	if claims["iss"] != testClientID || claims["sub"] != testClientID ||
		claims["aud"] != e.auth.srv.URL+"/"+testTenant+"/oauth2/v2.0/token" {
		t.Errorf("assertion claims = %v", claims)
	}
}

// TestNewValidatesConfig proves configuration mistakes are reported up
// front, all at once, without echoing the secret.
func TestNewValidatesConfig(t *testing.T) {
	good := func() Config {
		return Config{APIURL: "https://api.securitycenter.microsoft.com", AuthorityHost: "https://login.microsoftonline.com",
			TenantID: "contoso.onmicrosoft.com", ClientID: testClientID, ClientSecret: testSecret,
			UserAgent: "isolate-bot/test", MaxGetAttempts: 3, BaseBackoff: 200 * time.Millisecond, MaxBackoff: 5 * time.Second,
			MaxRetryAfterWait: 30 * time.Second, AttemptTimeout: 30 * time.Second, NotFoundRetryDelay: 2 * time.Second}
	}
	pemBytes, _ := selfSigned(t)
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr []string // substrings; nil means success
	}{
		{"ok", func(c *Config) {}, nil},
		{"geo host with slash", func(c *Config) { c.APIURL = "https://eu.api.security.microsoft.com/" }, nil},
		{"gov", func(c *Config) {
			c.APIURL = "https://api-gov.securitycenter.microsoft.us"
			c.AuthorityHost = "https://login.microsoftonline.us"
		}, nil},
		{"certificate", func(c *Config) { c.ClientSecret = ""; c.CertificatePEM = pemBytes }, nil},
		{"loopback http", func(c *Config) { c.APIURL = "http://127.0.0.1:8080" }, nil},
		{"nothing", func(c *Config) { *c = Config{} }, []string{"MDE API URL", "authority host", "tenant id", "client id", "client secret or a client certificate"}},
		{"no tuning", func(c *Config) {
			c.UserAgent, c.MaxGetAttempts, c.BaseBackoff, c.MaxBackoff, c.MaxRetryAfterWait, c.AttemptTimeout = "", 0, 0, 0, 0, 0
			c.NotFoundRetryDelay = 0
		}, []string{"UserAgent not set", "MaxGetAttempts not set", "BaseBackoff not set", "MaxBackoff not set", "MaxRetryAfterWait not set", "AttemptTimeout not set", "NotFoundRetryDelay not set", "internal/config"}},
		{"plain http", func(c *Config) { c.APIURL = "http://api.securitycenter.microsoft.com" }, []string{"https"}},
		{"query in api url", func(c *Config) { c.APIURL = "https://api.securitycenter.microsoft.com?x=1" }, []string{"no query"}},
		{"tenant with slash", func(c *Config) { c.TenantID = "a/b" }, []string{"tenant id"}},
		{"authority http", func(c *Config) { c.AuthorityHost = "http://login.example" }, []string{"authority host"}},
		{"both credentials", func(c *Config) { c.CertificatePEM = pemBytes }, []string{"not both"}},
		{"bad pem", func(c *Config) { c.ClientSecret = ""; c.CertificatePEM = []byte("junk") }, []string{"certificate PEM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mod(&cfg)
			c, err := New(cfg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				api := strings.TrimRight(cfg.APIURL, "/")
				u, _ := url.Parse(api)
				if c.api != api || c.scopes[0] != ScopeFor(u) {
					t.Errorf("api %q scope %q", c.api, c.scopes[0])
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want errors %v", tt.wantErr)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			mustNotContainSecrets(t, "config error", err.Error())
		})
	}
}

// TestScopeOverride proves an explicit Scope reaches Azure AD.
func TestScopeOverride(t *testing.T) {
	const scope = "https://securitycenter.onmicrosoft.com/windowsatpservice/.default"
	e := newEnv(t, nil, func(c *Config) { c.Scope = scope })
	if err := e.client.Token(context.Background()); err != nil {
		t.Fatalf("Token: %v", err)
	}
	if got := e.auth.lastForm(t)["scope"][0]; !strings.HasPrefix(got, scope) {
		t.Errorf("scope = %q, want %q", got, scope)
	}
}
