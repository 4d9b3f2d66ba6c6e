"""The board's voice when the browser has none (语音播报): espeak-ng's Mandarin voice
renders a call to WAV on the server; the last ``CACHED`` calls are kept."""

from __future__ import annotations

import shutil
import subprocess
from collections import OrderedDict
from typing import Any

from nameko.extensions import DependencyProvider

from services.common.errors import UpstreamUnavailable
from services.common.runtime import SiteRuntime
from services.gateway.settings import GatewaySettings

CACHED = 64


class Voice:
    def __init__(self, command: str, voice: str) -> None:
        self.command, self.voice = command, voice
        self.cache: OrderedDict[str, bytes] = OrderedDict()

    def problem(self) -> str | None:
        """Why there is no server voice, or None (shown in /health's notes)."""
        if shutil.which(self.command) is None:
            return f"未安装 {self.command}：叫号屏只能使用浏览器自带语音或静音"
        return None

    def wav(self, text: str) -> bytes:
        if text in self.cache:
            self.cache.move_to_end(text)
            return self.cache[text]
        if self.problem() is not None:
            raise UpstreamUnavailable("服务器没有语音引擎")
        done = subprocess.run(  # a fixed program; the text is one argument
            [self.command, "-v", self.voice, "-s", "150", "--stdout", text],
            capture_output=True,
            timeout=20,
            check=False,
        )
        if done.returncode != 0 or not done.stdout.startswith(b"RIFF"):
            raise UpstreamUnavailable("语音合成失败")
        self.cache[text] = done.stdout
        while len(self.cache) > CACHED:
            self.cache.popitem(last=False)
        return done.stdout


class VoiceProvider(DependencyProvider):  # type: ignore[misc]
    site_runtime = SiteRuntime()

    def setup(self) -> None:
        settings = GatewaySettings.from_section(self.site_runtime.ready().config.section)
        self.voice = Voice(settings.voice_command, settings.voice_name)

    def get_dependency(self, worker_ctx: Any) -> Voice:
        return self.voice
