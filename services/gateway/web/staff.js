// A signed-in staff member's page: every JSON call goes through the gateway's bridge
// (POST /rpc/<service>/<method>) with the session cookie and the CSRF token the page
// shell carries. An ended session sends the browser to sign in again.
"use strict";
const Staff = (() => {
  const csrf = document.querySelector("meta[name=csrf]").content;

  class CallError extends Error {
    constructor(status, data) {
      super(data.message || "操作失败（HTTP " + status + "）");
      this.status = status;
      this.code = data.code;
      this.fields = data.fields || {};
    }
  }

  function signInAgain() {
    location.assign("/login?next=" + encodeURIComponent(location.pathname) + "&expired=1");
  }

  async function post(url, body) {
    let answer;
    try {
      answer = await fetch(url, { method: "POST", body: JSON.stringify(body),
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf } });
    } catch (e) {
      throw new CallError(0, { message: "无法连接本站点网关，请检查网络" });
    }
    const data = await answer.json().catch(() => ({}));
    if (answer.status === 401) { signInAgain(); throw new CallError(401, data); }
    if (!answer.ok) throw new CallError(answer.status, data);
    return data;
  }

  // service.method(...args, **kwargs) as this staff member; the result, or a CallError
  // carrying the service's Chinese message.
  async function call(service, method, args = [], kwargs = {}) {
    return (await post("/rpc/" + service + "/" + method, { args, kwargs })).result;
  }

  async function signOut() {
    await post("/logout", {}).catch(() => null);
    location.assign("/login");
  }

  const out = document.getElementById("sign-out");
  if (out) out.onclick = signOut;

  return { call, post, signOut, CallError };
})();
