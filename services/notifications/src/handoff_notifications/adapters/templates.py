"""Template lookup and rendering (Jinja2 sandbox; HTML autoescaped).

Files live under `<templates>/<tenant>/<template>.<channel>.<lang>.j2`. The
lookup order for (tenant, template, channel, language) is:

1. `<tenant>/<template>.<channel>.<lang>.j2`
2. `default/<template>.<channel>.<lang>.j2`
3. the same two with the tenant's default language
4. the built-in generic message for the channel (in this module, English)

An e-mail template defines the blocks `subject`, `text` and optionally `html`.
The same file is loaded by two sandboxed environments: the plain one renders
subject and text, the autoescaping one renders `html`, so a value such as a
recipient name can never inject markup. Without an `html` block the text is
escaped and wrapped in paragraphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, DictLoader, FileSystemLoader, Template, TemplateNotFound
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

BUILTIN_PREFIX = "_builtin"
_BUILTIN = {
    f"{BUILTIN_PREFIX}/generic.email.j2": (
        "{% block subject %}{{ brand }}: update on your order {{ order_id }}{% endblock %}"
        "{% block text %}Hello {{ recipient_name }},\n\n"
        "there is news about your order {{ order_id }}: {{ milestone | replace('_', ' ') }}."
        "{% if tracking_url %}\n\nTrack it: {{ tracking_url }}{% endif %}\n\n"
        "{{ brand }}{% endblock %}"
    ),
    f"{BUILTIN_PREFIX}/generic.sms.j2": (
        "{{ brand }}: order {{ order_id }} - {{ milestone | replace('_', ' ') }}."
        "{% if tracking_url %} {{ tracking_url }}{% endif %}"
    ),
}


class TemplateError(Exception):
    """A template that cannot be rendered (a permanent failure for the notification)."""


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    template: str


@dataclass(frozen=True, slots=True)
class RenderedSms:
    text: str
    template: str


def candidates(tenant: str, template: str, channel: str, lang: str, tenant_lang: str) -> list[str]:
    """Template names to try, most specific first (see the module docstring)."""
    names: list[str] = []
    for language in dict.fromkeys([lang, tenant_lang]):
        for owner in dict.fromkeys([tenant, "default"]):
            names.append(f"{owner}/{template}.{channel}.{language}.j2")
    names.append(f"{BUILTIN_PREFIX}/generic.{channel}.j2")
    return names


def _one_line(text: str) -> str:
    # a subject is a header: a newline in it would be header injection
    return " ".join(text.split())


class TemplateRenderer:
    def __init__(self, directory: Path):
        if not (directory / "default").is_dir():
            raise FileNotFoundError(f"{directory}: no 'default' template directory")
        self.directory = directory
        loader = ChoiceLoader([FileSystemLoader(str(directory)), DictLoader(_BUILTIN)])
        self._text = SandboxedEnvironment(
            loader=loader, autoescape=False, keep_trailing_newline=False
        )
        self._html = SandboxedEnvironment(loader=loader, autoescape=True)

    def resolve(self, tenant: str, template: str, channel: str, lang: str, tenant_lang: str) -> str:
        """The name of the template file that will be used."""
        for name in candidates(tenant, template, channel, lang, tenant_lang):
            try:
                self._text.get_template(name)
            except TemplateNotFound:
                continue
            return name
        raise TemplateError(f"no template for {channel} (not even the built-in one)")

    @staticmethod
    def _block(tpl: Template, block: str, variables: dict[str, Any]) -> str | None:
        render = tpl.blocks.get(block)
        if render is None:
            return None
        return "".join(render(tpl.new_context(variables))).strip()

    def email(
        self, tenant: str, template: str, lang: str, tenant_lang: str, variables: dict[str, Any]
    ) -> RenderedEmail:
        name = self.resolve(tenant, template, "email", lang, tenant_lang)
        try:
            plain = self._text.get_template(name)
            subject = self._block(plain, "subject", variables)
            text = self._block(plain, "text", variables)
            if subject is None or text is None:
                raise TemplateError(f"{name}: an e-mail template needs 'subject' and 'text' blocks")
            html = self._block(self._html.get_template(name), "html", variables)
        except TemplateError:
            raise
        except Exception as exc:  # syntax errors, sandbox violations: the template is broken
            raise TemplateError(f"{name}: {exc}") from exc
        if html is None:
            paragraphs = "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n"))
            html = paragraphs.replace("\n", "<br>\n")
        return RenderedEmail(_one_line(subject), text, html, name)

    def sms(
        self, tenant: str, template: str, lang: str, tenant_lang: str, variables: dict[str, Any]
    ) -> RenderedSms:
        name = self.resolve(tenant, template, "sms", lang, tenant_lang)
        try:
            text = self._text.get_template(name).render(variables)
        except Exception as exc:
            raise TemplateError(f"{name}: {exc}") from exc
        return RenderedSms(" ".join(text.split()), name)
