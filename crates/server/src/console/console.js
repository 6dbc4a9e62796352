// The Access tokens page's Copy button: the new token to the clipboard. A
// file of its own, not an onclick attribute, because the console's
// Content-Security-Policy runs no inline script.
const copy = document.getElementById("copy");
if (copy) {
  copy.addEventListener("click", () => {
    navigator.clipboard.writeText(document.getElementById("secret").value);
    copy.textContent = "Copied";
  });
}
