// The public report's 打印 button: the browser prints the page (report.css hides the button).
"use strict";
document.getElementById("print").addEventListener("click", () => window.print());
