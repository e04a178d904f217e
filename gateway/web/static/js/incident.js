import { showError, subscribe } from "./common.js";
import { loadIncident, renderIncident } from "./incident_view.js";

const root = document.getElementById("incident");
const id = Number(root.dataset.id);
async function refresh() {
  try {
    renderIncident(root, await loadIncident(id), { onChange: refresh });
  } catch (err) {
    showError(root, err);
  }
}
refresh();
subscribe((item) => {
  if (item.incident_id === id) refresh();
});
