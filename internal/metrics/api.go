package metrics

import (
	"encoding/json"
	"net/http"
	"time"
)

// APIHandler serves the console's JSON views of the metrics:
//
//	GET /kappa/metrics/functions        {"functions":[Summary…],"host":…}: last hour per function
//	GET /kappa/metrics/functions/{name} {"function","running","step","series":[Bucket…]}
//	GET /kappa/billing                  {"since","functions":[Billing…],"total":Billing}
//
// Any other path is 404.
func (m *Metrics) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /kappa/metrics/functions", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]any{"functions": m.Summaries(), "time": m.opts.Now().UTC()}
		if m.opts.Host != nil {
			e := m.opts.Host.Environments()
			out["host"] = map[string]any{
				"live": e.Live, "idle": e.Idle, "busy": max(e.Live-e.Idle, 0),
				"provisioned": e.Provisioned, "spare": e.Spare, "memoryCommittedMB": e.MemoryMB,
			}
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /kappa/metrics/functions/{name}", func(w http.ResponseWriter, r *http.Request) {
		fn := r.PathValue("name")
		writeJSON(w, map[string]any{
			"function": fn, "running": m.Running(fn), "stepSeconds": int(step / time.Second),
			"series": m.Series(fn),
		})
	})
	mux.HandleFunc("GET /kappa/billing", func(w http.ResponseWriter, r *http.Request) {
		fns := m.Billings()
		total := Billing{Function: "*"}
		for _, b := range fns {
			total.Invocations += b.Invocations
			total.BilledMs += b.BilledMs
			total.GBSeconds += b.GBSeconds
			total.GBSecondsLastHour += b.GBSecondsLastHour
		}
		writeJSON(w, map[string]any{"since": m.started.UTC(), "functions": fns, "total": total})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}
