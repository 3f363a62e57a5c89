import pytest
from tests.optout.test_signals import refuse, page, verified_domain
pytestmark = pytest.mark.django_db

def test_peek(book, holder, holder_api):
    d = verified_domain(holder)
    refuse(holder_api, scope="work", work=book.pk)
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/", purposes=["train-genai"])
    refuse(holder_api, scope="url_prefix", url_prefix="https://news.example.kr/a*b$/?x=1")
    r = page(book.pk, "ko")
    print(dict(r.items()))
    print(r.content.decode())
    print(holder_api.get(f"/api/v1/domains/{d.pk}/robots.txt").content.decode())
    print(holder_api.get(f"/api/v1/domains/{d.pk}/tdmrep.json").content.decode())
    print(holder_api.get(f"/api/v1/domains/999/robots.txt", HTTP_ACCEPT="text/plain").content.decode())
    print(holder_api.get(f"/api/v1/domains/999/robots.txt").items())
