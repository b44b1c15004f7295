package registry

import (
	_ "embed"
	"html/template"
	"net/http"
)

//go:embed ui.html
var uiHTML string

var uiTemplate = template.Must(template.New("ui").Parse(uiHTML))

// uiData is what the page shows before its script has asked the API.
type uiData struct {
	ID, Cluster, Release       string
	KnownSchema, SchemaVersion int
}

func (r *Replica) handleUI(w http.ResponseWriter, _ *http.Request) {
	d := uiData{ID: r.cfg.ID, Cluster: r.cfg.Cluster, Release: r.cfg.Release, KnownSchema: r.known}
	if st := r.Store(); st != nil {
		d.SchemaVersion = st.Schema()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = uiTemplate.Execute(w, d)
}
