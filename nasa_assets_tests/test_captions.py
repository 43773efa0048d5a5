"""Captions from the real recorded NASA answers and from the markup NASA's centers publish."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasa_assets.dataset.captions import caption, clean_description, keyword_list

DATA = Path(__file__).parent / "data"


def _recorded() -> dict[str, dict]:
    items = {}
    for path in sorted(DATA.glob("search-*.json")):
        for item in json.loads(path.read_text())["collection"]["items"]:
            data = item["data"][0]
            items[data["nasa_id"]] = data
    meta = json.loads((DATA / "assets-metadata-json-NHQ202401260011.json").read_text())
    items["NHQ202401260011"] = {"title": meta["AVAIL:Title"], "description": meta["AVAIL:Description"],
                                "keywords": meta["AVAIL:Keywords"]}
    return items


RECORDED = _recorded()


@pytest.mark.parametrize("nasa_id, expected", [
    # "Photo Credit: (NASA/Joel Kowsky)" at the end goes.
    ("201407220003HQ",
     "Apollo 11 45th Anniversary. NASA Administrator Charles Bolden, left, welcomes Carol Armstrong, "
     "widow of Apollo 11 commander, Neil Armstrong, Apollo 11 astronauts Michael Collins and Buzz "
     "Aldrin, right, to NASA Headquarters in Washington on Tuesday, July 22, 2014, during the 45th "
     "anniversary week of the Apollo 11 lunar landing."),
    # The metadata file's "Photo Credit: (NASA/Bill Ingalls)".
    ("NHQ202401260011",
     "NASA and Mongolia Meet to Discuss Space Strategy and Disaster Mo. Associate Administrator Jim "
     "Free, 3rd from right, and the Mongolian Minister of Digital Development and Communications "
     "Nyam-Osor Uchral, 3rd from left, meet to discuss Mongolia’s National Space Strategy planning "
     "and methods for natural disasters monitoring and prevention, Friday, Jan. 26, 2024, at the "
     "NASA Headquarters Mary W. Jackson Building in Washington."),
    # A trailing space and no credit: kept as written, joined to the title.
    ("jsc2007e034221",
     "Apollo 11 spacecraft pre-launch. Personnel atop the 402-ft. Mobile Service Structure look back "
     "at the Apollo 11 spacecraft as the tower is moved away during a Countdown Demonstration Test. "
     "Photo filed 11 July 1969."),
    # JSC's photo-number stub "STS065-05-037 (8-23 July 1994) --- " and a double space.
    ("sts065-05-037",
     "STS-65 crew works inside the IML-2 spacelab module aboard Columbia, OV-102. In the science "
     "module aboard the Space Shuttle Columbia, four members of the crew busy themselves with "
     "experiments in support of the second International Microgravity Laboratory (IML-2) mission. "
     "Left to right are Donald A. Thomas and Leroy Chiao, both mission specialists; Richard J. Hieb, "
     "payload commander, and Dr. Chiaki Mukai of NASDA, payload specialist."),
    # A stub with nothing after "---" and no keywords: the title alone.
    ("iss026-s-001", "iss026-s-001"),
    # JPL: the description repeats the title; keywords not in the title follow.
    ("PIA12235", "Nearside of the Moon. Keywords: Chandrayaan-1."),
    ("PIA09000", "Skewered Moon. Keywords: Dione, Cassini-Huygens."),
    # One comma-joined keyword string, split; "Apollo" and "Apollo 8" are already in the title.
    ("T803303_A_AS-503-APOLLO-8-CREW-DEPARTING-MSOB-ENROUTE-TO-PAD-39A",
     "T803303_A_AS-503-APOLLO-8-CREW-DEPARTING-MSOB-ENROUTE-TO-PAD-39A. Keywords: NASA, Film, "
     "Film Transfers."),
    # "More: <url>" and "Credit: NASA 360" at the end go.
    ("NHQ_2018_0126_Jan. 31, 2018 Super Blue Blood Moon",
     "Jan. 31, 2018 Super Blue Blood Moon. January 31 brings a lunar trifecta: the Super Blue Blood "
     "Moon! NASA TV will offer a livestream starting at 5:30 a.m. This full moon is the third in a "
     "series of “supermoons,” when the Moon is closer to Earth in its orbit -- known as perigee -- "
     "and about 14 percent brighter than usual. It’s the second full moon of the month, commonly "
     "known as a “blue moon.” The super blue moon will pass through Earth’s shadow to give viewers "
     "in the right location a total lunar eclipse. While the Moon is in the Earth’s shadow it will "
     "take on a reddish tint, known as a “blood moon.”"),
    # A hashtag and "Learn more at: <url>" at the end go.
    ("NHQ_2019_0311_Go Forward to the Moon",
     "Go Forward to the Moon. NASA is going to the Moon and on to Mars, in a measured, sustainable "
     "way. Working with U.S. companies and international partners, NASA will push the boundaries of "
     "human exploration forward to the Moon. NASA is working to establish a permanent human "
     "presence on the Moon within the next decade to uncover new scientific discoveries and lay the "
     "foundation for private companies to build a lunar economy. Right now, NASA is taking steps to "
     "begin this next era of exploration."),
])
def test_caption_of_recorded_items(nasa_id, expected):
    item = RECORDED[nasa_id]
    assert caption(item["title"], item.get("description"), item.get("keywords")) == expected


def test_no_recorded_caption_keeps_a_credit_link_or_markup():
    for item in RECORDED.values():
        text = caption(item["title"], item.get("description"), item.get("keywords"))
        assert text and "credit" not in text.lower() and "http" not in text
        assert "  " not in text and text == text.strip()


@pytest.mark.parametrize("description, expected", [
    # JPL's HTML paragraphs, an entity and the credit paragraph.
    ("<p>This image shows the lunar south pole&#8217;s craters.</p>\n<p>Image credit: "
     "NASA/JPL-Caltech/Univ. of Arizona</p>", "This image shows the lunar south pole’s craters."),
    # Goddard's standing boilerplate after the credit.
    ('The Moon rises. <br />Credit: NASA/Goddard/Rebecca Roth<br /><b><a href="http://www.nasa.gov/'
     'audience/formedia/features/MP_Photo_Guidelines.html" rel="nofollow">NASA image use policy.</a>'
     '</b><br /><b><a href="http://www.nasa.gov/centers/goddard/home/index.html" rel="nofollow">NASA '
     "Goddard Space Flight Center</a></b> enables NASA’s mission through four scientific endeavors."
     '<br /><b>Follow us on <a href="http://twitter.com/NASAGoddardPix">Twitter</a></b>',
     "The Moon rises."),
    # Escaped twice, a non-breaking space, a script, a zero-width space.
    ("Crater&amp;nbsp;Tycho &amp;amp; its rays<script>alert(1)</script>\u200b.", "Crater Tycho & its rays."),
    ("A comparison: 2 < 3 & 5 > 4.", "A comparison: 2 < 3 & 5 > 4."),
    ("For more information, visit <a href='https://www.nasa.gov/moon'>the Moon page</a>.", ""),
    (None, ""),
    (float("nan"), ""),
])
def test_clean_description(description, expected):
    assert clean_description(description) == expected


def test_caption_length_bound_cuts_at_a_sentence_then_a_word():
    long = "The Moon is bright. " * 100
    text = caption("Moon", long, None, max_chars=100)
    assert text == "Moon. " + "The Moon is bright. " * 3 + "The Moon is bright." and len(text) == 85
    text = caption("", "word " * 100, None, max_chars=23)
    assert text == "word word word word" and len(text) <= 23
    with pytest.raises(ValueError, match="max_chars"):
        caption("t", "d", None, max_chars=0)


def test_keywords_from_lists_arrays_and_joined_strings():
    import numpy as np

    assert keyword_list(np.array(["Moon", "moon", " Apollo 11 "], dtype=object)) == ["Moon", "Apollo 11"]
    assert keyword_list("Apollo, Apollo 8,, NASA") == ["Apollo", "Apollo 8", "NASA"]
    assert keyword_list(None) == []
    assert caption(None, None, ["Moon", "Mars"]) == "Moon, Mars"


@given(
    title=st.one_of(st.none(), st.text()),
    description=st.one_of(st.none(), st.text(), st.text(alphabet="<>&;#/ apbr-Credit:.()NASA\n")),
    keywords=st.one_of(st.none(), st.lists(st.text())),
    max_chars=st.integers(1, 300),
)
@settings(max_examples=200, deadline=None)
def test_any_input_gives_a_bounded_single_line_caption(title, description, keywords, max_chars):
    text = caption(title, description, keywords, max_chars=max_chars)
    assert len(text) <= max_chars
    assert text == text.strip() and "  " not in text and "\n" not in text
