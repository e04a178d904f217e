// Sign out: end the server session (POST /api/auth/logout), then let the form's POST /logout
// clear the console's cookies and return to the sign-in page.
const form = document.querySelector("form[data-testid=logout-form]");
form?.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" });
  } catch {
    // offline or already signed out: the cookies are cleared below all the same
  }
  form.submit();
});
