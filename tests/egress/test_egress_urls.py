from __future__ import annotations

import asyncio

import pytest

from reelgate.egress.urls import validate_callback_url, validate_image_url_syntax
from reelgate.errors import ApiError


def callback_error(url: str, *, allow_private: bool = False) -> ApiError:
    with pytest.raises(ApiError) as caught:
        asyncio.run(validate_callback_url(url, allow_private=allow_private))
    assert caught.value.status == 400
    assert caught.value.param == "callback_url"
    return caught.value


def test_callback_public_https_literal_accepted() -> None:
    asyncio.run(validate_callback_url("https://8.8.8.8/hooks/reelgate?x=1", allow_private=False))


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://8.8.8.8/hook", "https"),
        ("ftp://8.8.8.8/hook", "https"),
        ("https://user:pw@8.8.8.8/hook", "credentials"),
        ("https:///hook", "host"),
        ("/relative/hook", "host"),
        ("https://8.8.8.8/" + "a" * 2048, "2048"),
        ("https://127.0.0.1/hook", "internal"),
        ("https://localhost/hook", "internal"),
        ("https://169.254.169.254/latest/meta-data", "internal"),
        ("https://[::ffff:10.0.0.1]/hook", "internal"),
        ("https://0x7f.1/hook", "internal"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_callback_rejections(url: str, fragment: str) -> None:
    assert fragment in callback_error(url).message


def test_callback_private_allowed_with_flag_but_must_still_resolve() -> None:
    asyncio.run(validate_callback_url("https://localhost:8443/hook", allow_private=True))
    assert "does not resolve" in callback_error("https://no-such-host.invalid/", allow_private=True).message


def test_callback_param_name_is_configurable() -> None:
    with pytest.raises(ApiError) as caught:
        asyncio.run(validate_callback_url("http://x.example", allow_private=False, param="webhook.url"))
    assert caught.value.param == "webhook.url"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://example.com/cat.png", "http"),
        ("http://example.com/cat", "http"),
        ("HTTPS://EXAMPLE.COM/cat.jpg", "http"),
        ("data:image/png;base64,iVBORw0KGgo=", "data"),
        ("DATA:image/jpeg;base64,/9j/", "data"),
        ("data:image/webp;name=a.webp;base64,UklGRg==", "data"),
    ],
)
def test_image_url_syntax_accepts(url: str, kind: str) -> None:
    assert validate_image_url_syntax(url, param="image_urls[0]", allow_private=False) == kind


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/cat.png",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "cat.png",
        "https:///cat.png",
        "data:text/plain;base64,aGk=",
        "data:image/png,rawbytes",
        "https://example.com/" + "a" * 2048,
        "http://localhost/cat.png",
        "http://foo.localhost/cat.png",
        "http://127.0.0.1/cat.png",
        "http://[::1]/cat.png",
        "http://10.0.0.7:8080/cat.png",
        "http://2130706433/cat.png",
        "http://[::ffff:192.168.0.1]/cat.png",
        "http://example.com:70000/cat.png",
    ],
)
def test_image_url_syntax_rejects_naming_the_param(url: str) -> None:
    with pytest.raises(ApiError) as caught:
        validate_image_url_syntax(url, param="image_urls[1]", allow_private=False)
    assert caught.value.status == 400
    assert caught.value.param == "image_urls[1]"
    assert caught.value.message.startswith("image_urls[1] ")


def test_image_url_syntax_allows_private_literals_with_flag() -> None:
    for url in ("http://localhost:8000/cat.png", "http://127.0.0.1/cat.png", "http://[::1]/a"):
        assert validate_image_url_syntax(url, param="image_urls[0]", allow_private=True) == "http"
