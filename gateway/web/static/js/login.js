// Sign in with the accounts API: it sets the HttpOnly session cookie the console uses.
const form = document.getElementById("login");
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const res = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify({ username: form.username.value, password: form.password.value }),
  });
  if (res.ok) {
    location.href = "/";
  } else {
    const body = await res.json().catch(() => ({}));
    const wait = res.status === 429 ? res.headers.get("Retry-After") : null;
    document.getElementById("login-state").textContent =
      (body.detail || res.statusText) + (wait ? ` (${wait} s)` : "");
  }
});
