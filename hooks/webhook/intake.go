package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxBody is GitHub's cap on webhook payloads (25 MiB); larger bodies get 413.
const MaxBody = 25 << 20

// Recorder persists a delivery and (when enqueue) its job atomically.
// *Queue implements it.
type Recorder interface {
	Record(ctx context.Context, d *Delivery, enqueue bool) (duplicate bool, err error)
}

// Config configures the intake handler.
type Config struct {
	// Secrets are the webhook secrets; a signature made with any of them is
	// accepted (rotation). At least one, none empty.
	Secrets []string
	// Handled reports whether an event gets a job. Unhandled events are
	// recorded and answered 202 without one.
	Handled func(event string) bool
	// Recorder stores deliveries (required).
	Recorder Recorder
	// MaxBody overrides MaxBody (tests).
	MaxBody int64
	Logger  *slog.Logger
	// Registerer receives the intake metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Handler is the POST /webhook endpoint.
type Handler struct {
	secrets  [][]byte
	handled  func(string) bool
	rec      Recorder
	max      int64
	log      *slog.Logger
	outcomes *prometheus.CounterVec
	latency  prometheus.Histogram
}

// ErrNoSecret is returned by NewHandler without a usable secret.
var ErrNoSecret = errors.New("webhook: no webhook secret configured: set webhook_secrets in the config or AGENTGATE_WEBHOOK_SECRET (comma-separated for rotation); unsigned deliveries are never accepted")

// NewHandler validates cfg and returns the handler. It refuses to run
// without a secret or with an empty one.
func NewHandler(cfg Config) (*Handler, error) {
	if len(cfg.Secrets) == 0 {
		return nil, ErrNoSecret
	}
	h := &Handler{handled: cfg.Handled, rec: cfg.Recorder, max: cfg.MaxBody, log: cfg.Logger}
	for i, s := range cfg.Secrets {
		if strings.TrimSpace(s) == "" {
			return nil, fmt.Errorf("webhook: webhook secret #%d is empty; remove it or set a value (an empty secret would accept forged deliveries)", i+1)
		}
		h.secrets = append(h.secrets, []byte(s))
	}
	if h.rec == nil {
		return nil, errors.New("webhook: no recorder (store) configured")
	}
	if h.handled == nil {
		h.handled = func(string) bool { return true }
	}
	if h.max <= 0 {
		h.max = MaxBody
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentgate_webhook_deliveries_total",
		Help: "Webhook deliveries by event and outcome (accepted, duplicate, unhandled, rejected_*, error).",
	}, []string{"event", "outcome"})
	h.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "agentgate_webhook_ack_seconds",
		Help:    "Time from request to answer for webhook deliveries.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
	})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(h.outcomes); err != nil {
			return nil, fmt.Errorf("webhook: register metrics: %w", err)
		}
		if err := cfg.Registerer.Register(h.latency); err != nil {
			return nil, fmt.Errorf("webhook: register metrics: %w", err)
		}
	}
	return h, nil
}

// knownEvents bounds the metrics' event label.
var knownEvents = map[string]bool{
	"push": true, "pull_request": true, "issue_comment": true, "check_run": true, "check_suite": true,
	"installation": true, "installation_repositories": true, "workflow_run": true, "ping": true, "status": true,
	"merge_group": true, "pull_request_review": true,
}

func eventLabel(e string) string {
	if knownEvents[e] {
		return e
	}
	return "other"
}

// deliveryRE accepts GitHub's GUIDs (and test ids) and nothing that could
// smuggle separators into logs or keys.
var deliveryRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$`)
var eventRE = regexp.MustCompile(`^[a-z_]{1,64}$`)

// payloadHead is the part of a payload the intake indexes.
type payloadHead struct {
	Action       string `json:"action"`
	Installation *struct {
		ID int64 `json:"id"`
	} `json:"installation"`
	Repository *struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	event := r.Header.Get("X-GitHub-Event")
	id := r.Header.Get("X-GitHub-Delivery")
	answer := func(code int, outcome, msg string) {
		h.outcomes.WithLabelValues(eventLabel(event), outcome).Inc()
		h.latency.Observe(time.Since(start).Seconds())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, msg+"\n")
		lvl := slog.LevelInfo
		if code >= 400 {
			lvl = slog.LevelWarn
		}
		h.log.Log(r.Context(), lvl, "webhook delivery", "delivery_id", safe(id), "event", safe(event), "outcome", outcome, "status", code)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		answer(http.StatusMethodNotAllowed, "rejected_method", "POST only")
		return
	}
	if event == "" || !eventRE.MatchString(event) {
		answer(http.StatusBadRequest, "rejected_header", "missing or malformed X-GitHub-Event header")
		return
	}
	if id == "" || !deliveryRE.MatchString(id) {
		answer(http.StatusBadRequest, "rejected_header", "missing or malformed X-GitHub-Delivery header")
		return
	}
	sig := r.Header.Get("X-Hub-Signature-256")
	if sig == "" {
		// X-Hub-Signature (SHA-1) is ignored on purpose.
		answer(http.StatusUnauthorized, "rejected_signature", "missing X-Hub-Signature-256 header (SHA-256 signatures only)")
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		answer(http.StatusUnsupportedMediaType, "rejected_content_type", "Content-Type must be application/json (set the App's webhook content type to JSON)")
		return
	}
	if r.ContentLength > h.max {
		answer(http.StatusRequestEntityTooLarge, "rejected_size", "payload too large")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			answer(http.StatusRequestEntityTooLarge, "rejected_size", "payload too large")
			return
		}
		answer(http.StatusBadRequest, "rejected_body", "could not read the body")
		return
	}
	if !h.verify(sig, body) {
		answer(http.StatusUnauthorized, "rejected_signature", "signature does not match (check the webhook secret)")
		return
	}
	var head payloadHead
	if err := json.Unmarshal(body, &head); err != nil {
		answer(http.StatusUnsupportedMediaType, "rejected_body", "body is not a JSON object")
		return
	}
	d := &Delivery{ID: id, Event: event, Action: head.Action, Payload: body, ReceivedAt: time.Now()}
	if head.Installation != nil {
		d.InstallationID = head.Installation.ID
	}
	if head.Repository != nil {
		d.Repo = head.Repository.FullName
	}
	handled := h.handled(event)
	dup, err := h.rec.Record(r.Context(), d, handled)
	switch {
	case err != nil:
		h.log.Error("webhook: cannot record delivery", "delivery_id", id, "event", event, "err", err)
		answer(http.StatusServiceUnavailable, "error", "could not record the delivery; redeliver it later")
	case dup:
		answer(http.StatusOK, "duplicate", "duplicate delivery; already accepted")
	case !handled:
		answer(http.StatusAccepted, "unhandled", "recorded; event not handled")
	default:
		answer(http.StatusAccepted, "accepted", "accepted")
	}
}

// verify checks "sha256=<64 hex>" against every secret in constant time.
// All secrets are tried so that timing does not reveal which one matched.
func (h *Handler) verify(header string, body []byte) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(hexSig) != 64 {
		return false
	}
	want, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	match := false
	for _, s := range h.secrets {
		m := hmac.New(sha256.New, s)
		m.Write(body)
		if hmac.Equal(m.Sum(nil), want) {
			match = true
		}
	}
	return match
}

// Sign returns the X-Hub-Signature-256 value GitHub sends for body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// safe keeps attacker-chosen header values short and printable in logs.
func safe(s string) string {
	if len(s) > 100 {
		s = s[:100]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
