"""A bad-input corpus, generated here from a tiny valid HRIS: each case breaks one thing.

Every case runs `hr-ml validate` as a subprocess and checks the user contract: exit code 2, one line naming
the table (and the column, where there is one), no traceback. The same cases also run in-process against
`read_hris` + `validate`, which is fast and checks the error's attributes.
"""
import codecs, subprocess, sys
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from hr_ml.io import read_hris, write_hris
from hr_ml.schema import HRDataError, validate, summarize

VALID = {
    'employees': (
        "tenant_id,employee_id,hire_date,termination_date,termination_type,department,job_family,job_level,location,"
        "employment_type,weekly_hours,manager_id,birth_year,gender\n"
        "T1,E001,2019-04-01,,,engineering,software,5,DE,full_time,40,,1985,male\n"
        "T1,E002,2021-01-15,2024-06-30,voluntary,engineering,software,3,DE,full_time,40,E001,1994,female\n"
        "T1,E003,2022-09-01,,,sales,sales,2,DE,part_time,20,E001,1990,female\n"
        "T2,E001,2018-03-01,,,production,baking,4,AT,full_time,38.5,,1972,male\n"
        "T2,E002,2023-05-02,,,production,baking,1,AT,part_time,25,E001,2001,non_binary\n"),
    'compensation': (
        "tenant_id,employee_id,effective_date,base_salary,variable_pay,currency\n"
        "T1,E001,2019-04-01,72000,5000,EUR\nT1,E001,2023-01-01,78500,6000,EUR\nT1,E002,2021-01-15,54000,0,EUR\n"
        "T1,E003,2022-09-01,26000,1500,EUR\nT2,E001,2018-03-01,39000,0,EUR\nT2,E002,2023-05-02,17500,0,EUR\n"),
    'absences': (
        "tenant_id,employee_id,start_date,end_date,type\n"
        "T1,E002,2024-02-05,2024-02-07,sick\nT2,E001,2023-08-01,2023-08-14,vacation\n"),
    'reviews': (
        "tenant_id,employee_id,review_date,rating\n"
        "T1,E001,2023-12-15,4\nT1,E002,2023-12-15,2\nT2,E001,2023-12-20,3\n"),
    'job_changes': (
        "tenant_id,employee_id,effective_date,change_type,new_job_level,new_department,new_manager_id\n"
        "T1,E001,2023-01-01,promotion,5,,\nT1,E002,2024-01-01,manager_change,,,E001\n"),
}
FUTURE = (date.today() + timedelta(days=40)).isoformat()


def _write(folder: Path, texts: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t, x in texts.items():
        p = folder / f"{t}.csv"
        p.write_bytes(x if isinstance(x, bytes) else x.encode('utf-8'))
    return folder


def _sub(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# each case: texts -> (texts, mapping yaml text or None); expected table, column (None: the file has no column to name)
def c_missing_column(x):   x['employees'] = x['employees'].replace('hire_date,', 'start,', 1); return x, None
def c_wrong_dtype(x):      x['employees'] = _sub(x['employees'], 'sales,sales,2,', 'sales,sales,senior,'); return x, None
def c_duplicate_ids(x):    x['employees'] += "T1,E003,2022-09-01,,,sales,sales,2,DE,part_time,20,E001,1990,female\n"; return x, None
def c_term_before_hire(x): x['employees'] = _sub(x['employees'], '2024-06-30', '2020-06-30'); return x, None
def c_negative_salary(x):  x['compensation'] = _sub(x['compensation'], '54000', '-54000'); return x, None
def c_orphan_comp(x):      x['compensation'] += "T1,E999,2023-01-01,50000,0,EUR\n"; return x, None
def c_unknown_tenant(x):   x['compensation'] += "T9,E001,2023-01-01,50000,0,EUR\n"; return x, None
def c_empty_file(x):       x['absences'] = b''; return x, None
def c_header_only(x):      x['reviews'] = "tenant_id,employee_id,review_date,rating\n"; return x, None
def c_wrong_delimiter(x):  x['employees'] = x['employees'].replace(',', ';'); return x, "delimiter: ','\n"
def c_non_utf8(x):         x['employees'] = _sub(x['employees'], 'sales,sales', 'sales,Vertrieb Süd').encode('latin-1'); return x, None
def c_future_dates(x):     x['reviews'] += f"T2,E002,{FUTURE},4\n"; return x, None
def c_null_ids(x):         x['compensation'] += "T1,,2023-01-01,50000,0,EUR\n"; return x, None
def c_mapping_missing(x):  return x, "columns:\n  employees: {Start: hire_date}\n"
def c_bad_date_format(x):  x['absences'] = _sub(x['absences'], '2024-02-05', '05.02.2024'); return x, None
def c_decimal_comma(x):    x['employees'] = _sub(x['employees'], '38.5', '"38,5"'); return x, None
def c_type_no_date(x):     x['employees'] = _sub(x['employees'], 'T1,E003,2022-09-01,,', 'T1,E003,2022-09-01,,voluntary'); return x, None
def c_hours_zero(x):       x['employees'] = _sub(x['employees'], 'part_time,20,', 'part_time,0,'); return x, None
def c_category(x):         x['absences'] = _sub(x['absences'], 'sick', 'flu'); return x, None
def c_rating(x):           x['reviews'] = _sub(x['reviews'], '2023-12-15,2', '2023-12-15,7'); return x, None
def c_event_after_exit(x): x['reviews'] += "T1,E002,2024-12-15,3\n"; return x, None
def c_email_column(x):
    x['employees'] = x['employees'].replace('gender\n', 'gender,Email\n', 1).replace('male\n', 'male,a.b@acme.de\n')
    return x, None
def c_email_values(x):
    x['employees'] = x['employees'].replace('gender\n', 'gender,contact\n', 1).replace('male\n', 'male,a.b@acme.de\n')
    return x, None
def c_ragged_row(x):       x['reviews'] += "T2,E002,2024-01-10,4,extra\n"; return x, None
def c_unknown_file(x):     x['compensations'] = x.pop('compensation'); return x, None

CASES = [  # (case, table, column)
    (c_missing_column, 'employees', 'hire_date'),
    (c_wrong_dtype, 'employees', 'job_level'),
    (c_duplicate_ids, 'employees', 'employee_id'),
    (c_term_before_hire, 'employees', 'termination_date'),
    (c_negative_salary, 'compensation', 'base_salary'),
    (c_orphan_comp, 'compensation', 'employee_id'),
    (c_unknown_tenant, 'compensation', 'tenant_id'),
    (c_empty_file, 'absences', None),
    (c_header_only, 'reviews', None),
    (c_wrong_delimiter, 'employees', 'tenant_id'),   # the message quotes the one-column header
    (c_non_utf8, 'employees', 'job_family'),
    (c_future_dates, 'reviews', 'review_date'),
    (c_null_ids, 'compensation', 'employee_id'),
    (c_mapping_missing, 'employees', 'Start'),
    (c_bad_date_format, 'absences', 'start_date'),
    (c_decimal_comma, 'employees', 'weekly_hours'),
    (c_type_no_date, 'employees', 'termination_type'),
    (c_hours_zero, 'employees', 'weekly_hours'),
    (c_category, 'absences', 'type'),
    (c_rating, 'reviews', 'rating'),
    (c_event_after_exit, 'reviews', 'review_date'),
    (c_email_column, 'employees', 'Email'),
    (c_email_values, 'employees', 'contact'),
    (c_ragged_row, 'reviews', None),
    (c_unknown_file, 'compensations', None),
]
IDS = [c.__name__[2:] for c, _, _ in CASES]


def _make(tmp_path: Path, case):
    texts, mapping = case(dict(VALID))
    data = _write(tmp_path / 'export', texts)
    mp = None
    if mapping is not None:
        mp = tmp_path / 'mapping.yaml'
        mp.write_text(mapping, encoding='utf-8')
    return data, mp


def _cli(data: Path, mapping: Path | None = None):
    cmd = [sys.executable, '-m', 'hr_ml.cli', 'validate', '--data', str(data)]
    if mapping is not None: cmd += ['--mapping', str(mapping)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return r.returncode, (r.stdout + r.stderr).strip()


@pytest.mark.parametrize('case,table,column', CASES, ids=IDS)
def test_bad_input_inprocess(tmp_path, case, table, column):
    data, mp = _make(tmp_path, case)
    with pytest.raises(HRDataError) as ei:
        validate(read_hris(data, mp))
    msg = str(ei.value)
    assert msg and '\n' not in msg
    assert table in msg, msg
    if column: assert column in msg, msg


@pytest.fixture(scope='module')
def cli_results(tmp_path_factory):
    "Run `hr-ml validate` on every case once, a few subprocesses at a time (interpreter start-up dominates)."
    from concurrent.futures import ThreadPoolExecutor
    base = tmp_path_factory.mktemp('corpus')
    made = {i: _make(base / i, c) for i, (c, _, _) in zip(IDS, CASES)}
    with ThreadPoolExecutor(4) as ex:
        return dict(zip(made, ex.map(lambda dm: _cli(*dm), made.values())))


@pytest.mark.parametrize('case,table,column', CASES, ids=IDS)
def test_bad_input_cli(cli_results, case, table, column):
    code, out = cli_results[case.__name__[2:]]
    assert code == 2, out
    assert out and len(out.splitlines()) == 1, out
    assert 'Traceback' not in out
    assert table in out, out
    if column: assert column in out, out


def test_valid_corpus_passes(tmp_path):
    data = _write(tmp_path / 'export', VALID)
    s = validate(read_hris(data))
    assert s['tenants'] == 2 and s['employees'] == 5 and s['rows']['compensation'] == 6
    code, out = _cli(data)
    assert code == 0, out
    assert out == summarize(s) and len(out.splitlines()) == 1
    assert out.startswith('OK: 2 tenants, 5 employees; compensation 6 rows')


def test_bom_crlf_whitespace_passes(tmp_path):
    "Excel's export: UTF-8 BOM, CRLF, padded values and headers, mixed-case categories and booleans."
    x = dict(VALID)
    emp = x['employees'].replace('gender\n', 'gender ,Disability\n', 1).replace('department,', ' Department ,', 1)
    emp = emp.replace('production,', 'Production       ,').replace(',male\n', ',M ,No\n').replace(',female\n', ',f,YES\n')
    emp = emp.replace(',non_binary\n', ',non_binary,no\n').replace('part_time', 'Part Time')
    x['employees'] = codecs.BOM_UTF8 + emp.replace('\n', '\r\n').encode('utf-8')
    x['compensation'] = codecs.BOM_UTF8 + x['compensation'].replace('72000', '"72,000.00"').replace('\n', '\r\n').encode('utf-8')
    data = _write(tmp_path / 'export', x)
    mp = tmp_path / 'mapping.yaml'
    mp.write_text("values:\n  gender: {M: male, F: female}\n", encoding='utf-8')
    t = read_hris(data, mp)
    e = t['employees']
    assert e.filter(pl.col('tenant_id') == 'T2')['department'].to_list() == ['production', 'production']
    assert e['gender'].to_list() == ['male', 'female', 'female', 'male', 'non_binary']
    assert e['disability'].to_list() == [False, True, True, False, False]
    assert e['employment_type'].to_list()[2] == 'part_time'
    assert t['compensation']['base_salary'][0] == 72000.0
    code, out = _cli(data, mp)
    assert code == 0, out
    assert out.startswith('OK: 2 tenants, 5 employees;') and len(out.splitlines()) == 1, out


def test_semicolon_detected_and_encoding_option(tmp_path):
    "Without a declared delimiter ';' and tab are detected; encoding: latin-1 reads a Windows export."
    x = dict(VALID)
    x['employees'] = x['employees'].replace(',', ';').replace('38.5', '38,5')
    x['compensation'] = x['compensation'].replace(',', ';')
    x['absences'] = x['absences'].replace(',', '\t')
    data = _write(tmp_path / 'export', x)
    t = read_hris(data, {'decimal': ','})
    assert t['employees']['weekly_hours'].to_list()[3] == 38.5
    validate(t)
    y = dict(VALID); y['employees'] = _sub(y['employees'], 'sales,sales', 'sales,Vertrieb Süd').encode('latin-1')
    data = _write(tmp_path / 'latin', y)
    assert 'vertrieb süd' in read_hris(data, {'encoding': 'latin-1'})['employees']['job_family'].to_list()


def test_mapping_renames_hashes_and_defaults(tmp_path):
    "A single-company export with its own column names, a name column to drop and a personnel number to hash."
    (tmp_path / 'staff.csv').write_text(
        "PersNo,Name,Start,Leave,Reason,Sex\n"
        "1001,Anna Schmidt,01.03.2019,,,W\n1002,Jonas Weber,15.08.2020,30.06.2024,Resignation,M\n", encoding='utf-8')
    (tmp_path / 'm.yaml').write_text(
        "columns: {PersNo: employee_id, Start: hire_date, Leave: termination_date, Reason: termination_type, Sex: gender}\n"
        "values: {gender: {W: female, M: male}, termination_type: {Resignation: voluntary}}\n"
        "date_format: '%d.%m.%Y'\ndrop: [Name]\nhash: [PersNo]\nsalt: test-key\ndefaults: {tenant_id: ACME}\ntarget: left\n",
        encoding='utf-8')
    t = read_hris(tmp_path / 'staff.csv', tmp_path / 'm.yaml')
    e = t['employees']
    assert e['tenant_id'].to_list() == ['ACME', 'ACME']
    assert e['gender'].to_list() == ['female', 'male'] and e['termination_type'].to_list() == [None, 'voluntary']
    assert all(len(v) == 16 and v not in ('1001', '1002') for v in e['employee_id'])
    assert 'Name' not in e.columns
    assert validate(t)['employees'] == 2
    # without the salt, hashing is refused
    (tmp_path / 'm2.yaml').write_text((tmp_path / 'm.yaml').read_text().replace('salt: test-key\n', ''), encoding='utf-8')
    with pytest.raises(HRDataError, match='HR_ML_SALT'):
        read_hris(tmp_path / 'staff.csv', tmp_path / 'm2.yaml')


def test_bad_mapping_yaml(tmp_path):
    data = _write(tmp_path / 'export', VALID)
    mp = tmp_path / 'm.yaml'
    mp.write_text("columns: {employees: [oops\n", encoding='utf-8')
    code, out = _cli(data, mp)
    assert code == 2 and len(out.splitlines()) == 1 and 'not valid YAML' in out and 'Traceback' not in out


def test_write_hris_deterministic(tmp_path):
    t = read_hris(_write(tmp_path / 'export', VALID))
    a = write_hris(t, tmp_path / 'a')
    b = write_hris({k: v.sample(fraction=1.0, shuffle=True, seed=1) for k, v in t.items()}, tmp_path / 'b')
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]   # no temp folders left
    back = read_hris(tmp_path / 'a')
    assert validate(back) == validate(t)
