// The sign-in page: the password goes in a JSON POST (never in a URL); the session
// cookie comes back HttpOnly and SameSite=Strict. Then on to the page asked for, or the
// staff member's own page.
"use strict";
(() => {
  const form = document.getElementById("login");
  const error = form.querySelector(".error");
  const HOME = { clerk: "/window", manager: "/manage", supervisor: "/dashboard" };
  form.onsubmit = async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = { staff_id: form.staff_id.value.trim(), password: form.password.value,
      window: form.window.value.trim() || null };
    let answer, data;
    try {
      answer = await fetch("/login", { method: "POST", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json" }, credentials: "same-origin" });
      data = await answer.json();
    } catch (e) {
      error.textContent = "无法连接本站点网关，请检查网络后重试";
      return;
    }
    if (!answer.ok) { error.textContent = data.message || "登录失败"; return; }
    const home = data.roles.map((r) => HOME[r]).find(Boolean);
    location.assign(form.dataset.next || home || "/login");
  };
})();
