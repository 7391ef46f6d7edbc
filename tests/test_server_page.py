"""The web page in a real headless browser (Debian's chromium, driven by Selenium
through chromium-driver): open the page, load a document from a file (Markdown, and a
PDF read on the server), read it with progress, ask, watch the answer stream in,
ask again (the document is reused from the cache), start over.

Screenshots go to $PYTACTIC_SCREENSHOTS when set (docs/ holds the committed ones)."""

import os
import shutil
import time
from pathlib import Path

import pytest

from server_harness import RunningServer, need_server_extra

need_server_extra()
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (it is in the test extra)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium "
                "chromium-driver; .ci/run does)", allow_module_level=True)

DOC_MD = """# The Vellmar Bridge

The Vellmar Bridge crosses the river Osk at the town of Hallin. It was built in 1872
by the engineer Ada Brenn. The bridge is 214 metres long and has seven arches.
In 1931 a flood damaged the third arch, which was rebuilt in granite.
"""


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF showing text in Helvetica (written by hand, offsets exact)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


@pytest.fixture(scope="module")
def server(gemma_path):
    srv = RunningServer(model_path=gemma_path, n_ctx=2048, n_threads=2)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,860", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_script_timeout(120)
    yield drv
    drv.quit()


def shot(drv, name):
    folder = os.environ.get("PYTACTIC_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        drv.save_screenshot(str(Path(folder) / name))


def wait_for(drv, js, timeout=120, what=""):
    deadline = time.monotonic() + timeout
    while True:
        value = drv.execute_script(js)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or js}")
        time.sleep(0.05)


def open_file(drv, path):
    from selenium.webdriver.common.by import By

    drv.execute_script("document.getElementById('file').hidden = false;")
    drv.find_element(By.ID, "file").send_keys(str(path))
    drv.execute_script("document.getElementById('file').hidden = true;")


# Records every change of the answer being written, to prove it arrived in pieces.
WATCH = """
window.__lengths = [];
new MutationObserver(() => {
  const li = document.querySelector('#log li.assistant:last-child');
  if (li) window.__lengths.push(li.firstChild ? li.firstChild.textContent.length : 0);
}).observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true});
"""
LAST = "const li = document.querySelector('#log li.assistant:last-child'); "


def ask(drv, question):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    n = drv.execute_script("return document.querySelectorAll('#log li.assistant').length")
    box = drv.find_element(By.ID, "question")
    box.send_keys(question)
    box.send_keys(Keys.ENTER)  # Enter sends
    wait_for(drv, f"return document.querySelectorAll('#log li.assistant').length > {n}", what="an answer box")
    wait_for(drv, LAST + "return li && !li.classList.contains('streaming') && li.querySelector('.meta')",
             what="the answer to finish")
    return drv.execute_script(LAST + "return [li.firstChild.textContent, li.querySelector('.meta').textContent,"
                                     " li.className]")


def test_page_document_question_answer(server, browser, tmp_path):
    drv = browser
    drv.get(server.url + "/")
    wait_for(drv, "return document.getElementById('model').textContent.includes('context')", what="/health")
    assert server.state.model_id in drv.execute_script("return document.getElementById('model').textContent")
    assert "pytactic" in drv.title

    md = tmp_path / "bridge.md"
    md.write_text(DOC_MD)
    open_file(drv, md)
    wait_for(drv, "return document.getElementById('doc').value.includes('Vellmar')", what="the file's text")
    assert drv.execute_script("return document.getElementById('doc').value") == DOC_MD

    # Read it: progress events, then "Read: N tokens".
    drv.execute_script("""
      window.__progress = [];
      const bar = document.getElementById('progress');
      new MutationObserver(() => window.__progress.push([bar.value, bar.max]))
        .observe(bar, {attributes: true});
    """)
    drv.execute_script("document.getElementById('read').click()")
    status = wait_for(drv, "const s = document.getElementById('docstatus').textContent;"
                           "return s.startsWith('Read:') && s", what="the document to be read")
    progress = drv.execute_script("return window.__progress")
    assert progress and progress[-1][0] == progress[-1][1] == 1, progress
    n_doc = int(status.split()[1].replace(",", ""))
    assert n_doc > 60
    shot(drv, "server_page_read.png")

    drv.execute_script(WATCH)
    drv.execute_script("document.getElementById('maxtokens').value = 24")  # keep the test short
    text, meta, cls = ask(drv, "Who built the Vellmar Bridge?")
    assert "error" not in cls, text
    assert text.strip(), meta
    lengths = [n for n in drv.execute_script("return window.__lengths") if n]
    assert len(set(lengths)) >= 3, lengths  # the answer grew piece by piece
    assert "reused" in meta
    new_tokens, reused = [int(w) for w in meta.replace(",", "").split() if w.isdigit()][1:3]
    assert reused >= n_doc - 4  # the read document was served from the cache
    shot(drv, "server_page_answer.png")

    text2, meta2, _ = ask(drv, "How long is it?")
    assert text2.strip()
    assert len(drv.find_elements("css selector", "#log li.user")) == 2  # the conversation is kept
    reused2 = [int(w) for w in meta2.replace(",", "").split() if w.isdigit()][2]
    assert reused2 > reused  # the first exchange is cached too
    shot(drv, "server_page_conversation.png")

    # Start over (Alt+N): the conversation is gone, the document stays.
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(drv).key_down(Keys.ALT).send_keys("n").key_up(Keys.ALT).perform()
    wait_for(drv, "return document.querySelectorAll('#log li').length === 0", what="start over")
    assert "Vellmar" in drv.execute_script("return document.getElementById('doc').value")


def test_page_reads_a_pdf(server, browser, tmp_path):
    drv = browser
    drv.get(server.url + "/")
    wait_for(drv, "return document.getElementById('model').textContent.includes('context')")
    pdf = tmp_path / "note.pdf"
    pdf.write_bytes(tiny_pdf("The secret word is heliotrope."))
    open_file(drv, pdf)
    wait_for(drv, "return document.getElementById('doc').value.includes('heliotrope')", what="the PDF's text")
    assert "1 pages" in drv.execute_script("return document.getElementById('docstatus').textContent")


def test_page_shows_reading_progress(server, browser):
    """A long document is read in chunks: the bar and the status show tokens read."""
    drv = browser
    drv.get(server.url + "/")
    wait_for(drv, "return document.getElementById('model').textContent.includes('context')")
    long_doc = "\n\n".join(f"Section {i}. " + DOC_MD.split("\n", 2)[2] for i in range(20))  # ~1700 tokens
    drv.execute_script("const d = document.getElementById('doc'); d.value = arguments[0];"
                       "d.dispatchEvent(new Event('input'));", long_doc)
    drv.execute_script("document.getElementById('read').click()")
    partial = wait_for(drv, "const b = document.getElementById('progress');"
                            "return !b.hidden && b.value > 0 && b.value < b.max &&"
                            " document.getElementById('docstatus').textContent", what="a partial read")
    shot(drv, "server_page_reading.png")
    assert partial.startswith("Reading… ") and " / " in partial and partial.endswith(" tokens"), partial
    done, total = [int(x.replace(",", "")) for x in partial[len("Reading… "):-len(" tokens")].split(" / ")]
    assert 0 < done < total
    final = wait_for(drv, "const s = document.getElementById('docstatus').textContent;"
                          "return s.startsWith('Read:') && s", what="the end of the read")
    assert int(final.split()[1].replace(",", "")) == total
