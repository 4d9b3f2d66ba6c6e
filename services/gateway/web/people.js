// 人员与设备: one-time pairing codes for a kiosk, board or pad (shown big, with when it
// expires), the paired devices (revocable) and the staff accounts (add a clerk or a
// manager, disable one). These live in the gateway: its /manage/… routes, POST with the
// session's CSRF token, for a manager only.
"use strict";
(() => {
  const { el, row, fill } = Manage;
  const DEVICE = { kiosk: "取号机", board: "叫号屏", pad: "评价器" };
  const ROLE = { clerk: "窗口人员", manager: "大厅管理员", supervisor: "督查人员",
    catalog_editor: "目录编辑", admin: "系统管理员" };
  const error = document.querySelector("#people .column .error");

  // A button that runs `action` and shows a refusal in the panel's first error line.
  function act(text, action) {
    const button = el("button", { type: "button", text });
    button.addEventListener("click", async () => {
      error.textContent = "";
      button.disabled = true;
      try {
        await action();
        await refresh();
      } catch (e) {
        error.textContent = Manage.explain(e);
        button.disabled = false;
      }
    });
    return button;
  }

  function deviceRow(d) {
    const revoke = d.revoked ? "" : act("撤销", () => Staff.post("/manage/devices/revoke", { device_id: d.id }));
    const tr = row(d.id, d.name, DEVICE[d.role] || d.role, d.window || "—",
      d.revoked ? "已撤销" : "使用中 · " + Manage.time(d.paired_at), revoke);
    tr.dataset.device = d.id;
    return tr;
  }

  function staffRow(s) {
    const disable = s.disabled || s.id === Manage.staffId ? ""
      : act("停用", () => Staff.post("/manage/staff/disable", { staff_id: s.id }));
    const tr = row(s.id, s.name, s.roles.map((r) => ROLE[r] || r).join("、"),
      s.windows.join("、") || "—", s.disabled ? "已停用" : "正常", disable);
    tr.dataset.staff = s.id;
    return tr;
  }

  async function refresh() {
    const [devices, staff] = await Promise.all([Staff.post("/manage/devices", {}),
      Staff.post("/manage/staff", {})]);
    fill(document.getElementById("devices"), devices.items.map(deviceRow), "还没有配对的设备");
    fill(document.getElementById("staff"), staff.items.map(staffRow), "还没有工作人员账号");
  }

  function showCode(pairing) {
    document.getElementById("pairing-code").textContent = pairing.code;
    document.getElementById("pairing-expiry").textContent = (DEVICE[pairing.role] || pairing.role) +
      (pairing.window ? " · " + pairing.window + "号窗口" : "") + " · 有效期至 " + Manage.time(pairing.expires_at) +
      "，只能使用一次";
    document.getElementById("pairing").hidden = false;
  }

  Manage.onSubmit(document.getElementById("pairing-form"), async (data) => {
    showCode(await Staff.post("/manage/pairing", { role: data.role, window: data.window || null }));
  });
  Manage.onSubmit(document.getElementById("staff-form"), async (data, form) => {
    const windows = (data.windows || "").split(/[,，\s]+/).filter(Boolean);
    await Staff.post("/manage/staff/add", { ...data, roles: [data.roles], windows });
    form.reset();
    await refresh();
  });
  Manage.panel("people", { refresh });
})();
