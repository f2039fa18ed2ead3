"""Generate the synthetic evaluation set `tests/eval/dataset.jsonl`.

Every value is fake: names come from short lists, numbers are random but shaped like
real ones (cards pass Luhn, IBANs carry valid check digits, phone numbers use the
reserved 555-01xx range or fictional ranges), and domains are example domains. The
random generator is seeded, so running this script again writes the same file.

    .venv/bin/python tests/eval/generate.py
"""

from __future__ import annotations

import base64
import json
import random
import string
import unicodedata
from pathlib import Path

SEED = 20240517
OUTPUT = Path(__file__).with_name("dataset.jsonl")

FIRST_NAMES = [
    "Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farah", "Gustavo", "Hannah",
    "Ivan", "Julia", "Kenji", "Leila", "Marcus", "Nadia", "Oliver", "Priya",
    "Quentin", "Rosa", "Samuel", "Tamara", "Umar", "Valeria", "Wei", "Ximena",
    "Yusuf", "Zofia", "Amara", "Björn", "Carmen", "Diego", "Emily", "Fatima",
    "George", "Helga", "Isabel", "James", "Katarina", "Liam", "Maria", "Noah",
]  # fmt: skip
LAST_NAMES = [
    "Novak", "Petit", "Rossi", "Ivanov", "Garcia", "Haddad", "Silva", "Schmidt",
    "Kowalski", "Tanaka", "Okafor", "Lindqvist", "Moreau", "Fischer", "Nguyen",
    "O'Brien", "Ferreira-Ek", "Johansson", "Mendes", "Kaplan", "Dubois", "Weber",
    "Hernandez", "Chen", "Patel", "Andersen", "Costa", "Murphy", "Novotny", "Reyes",
]  # fmt: skip
CITIES = [
    "Berlin", "Lisbon", "Toronto", "Nairobi", "Osaka", "Denver", "Porto", "Melbourne",
    "Madrid", "Chicago", "Dublin", "Vienna", "Seattle", "Boston", "Prague", "Warsaw",
    "Stockholm", "Munich", "Amsterdam", "Barcelona", "San Francisco", "New York",
    "Buenos Aires", "Cape Town", "Rotterdam", "Helsinki", "Zurich", "Lyon",
]  # fmt: skip
# Names used only by the held-out records. Name heuristics are developed on the
# records above and checked on these, whose names and sentences they never saw.
HELDOUT_FIRST_NAMES = [
    "Aiko", "Bogdan", "Céline", "Dariusz", "Esther", "Finn", "Giulia", "Hamid",
    "Ingrid", "Joaquín", "Kwame", "Lucía", "Mateo", "Nora", "Oskar", "Paulina",
    "Rafael", "Sanne", "Thabo", "Ursula", "Viktor", "Yara", "Zainab", "Anouk",
]  # fmt: skip
HELDOUT_LAST_NAMES = [
    "Abiodun", "Bergström", "Castellanos", "Dvořák", "Eriksen", "Fontaine",
    "Gallagher", "Horvath", "Iwasaki", "Jovanović", "Kaminski", "Lombardi", "Mwangi",
    "Nakamura", "Oyelaran", "Papadopoulos", "Quispe", "Rahman", "Sørensen",
    "Takahashi", "Vargas", "Wójcik", "Yilmaz", "Zielinski",
]  # fmt: skip
HELDOUT_CITIES = [
    "Ghent", "Bergen", "Valencia", "Kraków", "Accra", "Montevideo", "Kyoto",
    "Tallinn", "Edinburgh", "Bologna", "Marseille", "Auckland",
]  # fmt: skip
EMAIL_DOMAINS = [
    "example.com", "example.org", "example.net", "mail.example.co.uk",
    "corp.example.de", "example.io", "example.test", "acme.internal",
]  # fmt: skip
IBAN_LAYOUTS = {"DE": 18, "GB": 18, "FR": 23, "NL": 14, "ES": 20, "IT": 23, "AT": 16}


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(
        rng.choice(string.digits) for _ in range(length - len(prefix) - 1)
    )
    for check in string.digits:
        candidate = body + check
        total = 0
        for position, char in enumerate(reversed(candidate)):
            value = int(char)
            if position % 2 == 1:
                value = value * 2 - 9 if value > 4 else value * 2
            total += value
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def fake_card(rng: random.Random) -> str:
    kind = rng.choice(["visa", "mc", "mc2", "amex", "discover"])
    if kind == "amex":
        number = luhn_complete(rng.choice(["34", "37"]), 15, rng)
        separator = rng.choice([" ", "-", ""])
        return separator.join([number[:4], number[4:10], number[10:]])
    prefix = {
        "visa": "4",
        "mc": rng.choice(["51", "52", "53", "54", "55"]),
        "mc2": str(rng.randint(2221, 2720)),
        "discover": "6011",
    }[kind]
    number = luhn_complete(prefix, 16, rng)
    separator = rng.choice([" ", "-", "", " "])
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


def fake_iban(rng: random.Random) -> str:
    country = rng.choice(list(IBAN_LAYOUTS))
    if country in ("GB", "NL"):
        bank = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
        rest = "".join(
            rng.choice(string.digits) for _ in range(IBAN_LAYOUTS[country] - 4)
        )
        bban = bank + rest
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(IBAN_LAYOUTS[country]))
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    check = 98 - int(numeric) % 97
    iban = f"{country}{check:02d}{bban}"
    if rng.random() < 0.6:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def fake_phone(rng: random.Random) -> str:
    tail = f"{rng.randint(100, 199):03d}"[1:]
    area = rng.choice(["212", "415", "646", "312", "617", "206"])
    return rng.choice(
        [
            f"({area}) 555-01{tail}",
            f"+1 {area} 555 01{tail}",
            f"{area}-555-01{tail}",
            f"{area}.555.01{tail}",
            f"+1-{area}-555-01{tail}",
            f"+44 20 7946 0{rng.randint(100, 999)}",
            f"020 7946 0{rng.randint(100, 999)}",
            f"+49 30 {rng.randint(100000, 999999)}",
            f"+33 1 42 68 {rng.randint(10, 99)} {rng.randint(10, 99)}",
            f"+31 20 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        ]
    )


def fake_ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def fake_ipv4(rng: random.Random) -> str:
    first = rng.choice([10, 172, 192, 198, 203, 81, 145])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def fake_ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(6)]
    style = rng.choice(["full", "compressed", "short"])
    if style == "full":
        return "2001:db8:" + ":".join(groups)
    if style == "compressed":
        return "2001:db8::" + ":".join(groups[:3])
    return "fe80::" + ":".join(groups[:2])


def random_token(rng: random.Random, length: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits


def fake_jwt(rng: random.Random) -> str:
    def segment(payload: dict) -> str:
        raw = json.dumps(payload, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    header = segment({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"})
    body = segment(
        {
            "sub": str(rng.randint(1000, 99999)),
            "iat": rng.randint(1_600_000_000, 1_700_000_000),
        }
    )
    signature = random_token(rng, 43, ALNUM + "-_")
    return f"{header}.{body}.{signature}"


def fake_api_key(rng: random.Random) -> str:
    kind = rng.choice(
        ["openai", "github", "slack", "aws", "google", "stripe", "gitlab", "hf"]
    )
    if kind == "openai":
        return "sk-proj-" + random_token(rng, 40, ALNUM + "_-")
    if kind == "github":
        return "ghp_" + random_token(rng, 36, ALNUM)
    if kind == "slack":
        return (
            f"xoxb-{rng.randint(10**9, 10**10)}-{rng.randint(10**9, 10**10)}-"
            + random_token(rng, 24, ALNUM)
        )
    if kind == "aws":
        return "AKIA" + random_token(rng, 16, UPPER_DIGITS)
    if kind == "google":
        return "AIza" + random_token(rng, 35, ALNUM + "_-")
    if kind == "stripe":
        return "sk_live_" + random_token(rng, 24, ALNUM)
    if kind == "gitlab":
        return "glpat-" + random_token(rng, 20, ALNUM)
    return "hf_" + random_token(rng, 34, ALNUM)


def fake_password(rng: random.Random) -> str:
    words = ["Tiger", "maple", "River", "orbit", "Cobalt", "lemon", "Falcon", "quartz"]
    return (
        rng.choice(words)
        + rng.choice("!#%*+")
        + str(rng.randint(10, 9999))
        + rng.choice(words).lower()
    )


def fake_private_key(rng: random.Random) -> str:
    lines = [random_token(rng, 64, ALNUM + "+/") for _ in range(rng.randint(3, 8))]
    kind = rng.choice(["RSA ", "EC ", "OPENSSH ", ""])
    return (
        f"-----BEGIN {kind}PRIVATE KEY-----\n"
        + "\n".join(lines)
        + f"\n-----END {kind}PRIVATE KEY-----"
    )


def fake_customer_id(rng: random.Random) -> str:
    return f"CUST-{rng.randint(0, 999999):06d}"


class Sample:
    """One text with its labeled spans, built piece by piece."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[dict] = []

    def text(self, value: str) -> "Sample":
        self.parts.append(value)
        self.length += len(value)
        return self

    def value(self, value: str, entity_type: str) -> "Sample":
        self.spans.append(
            {
                "start": self.length,
                "end": self.length + len(value),
                "entity_type": entity_type,
            }
        )
        return self.text(value)

    def record(self, kind: str, case: str = "as_is") -> dict:
        text = "".join(self.parts)
        if case == "lower":
            text = text.lower()
        elif case == "upper":
            text = text.upper()
        assert len(text) == self.length, "a case change altered the text length"
        return {"kind": kind, "text": text, "spans": self.spans}


def render(template: str, values: dict[str, tuple[str, str]]) -> Sample:
    """Fill `{slot}` markers; `values` maps slot -> (value, entity type or "").

    "{{" and "}}" stand for literal braces, as in str.format.
    """
    sample = Sample()
    literal: list[str] = []
    position = 0
    while position < len(template):
        pair = template[position : position + 2]
        if pair in ("{{", "}}"):
            literal.append(pair[0])
            position += 2
            continue
        if template[position] == "{":
            end = template.index("}", position)
            sample.text("".join(literal))
            literal = []
            value, entity_type = values[template[position + 1 : end]]
            if entity_type:
                sample.value(value, entity_type)
            else:
                sample.text(value)
            position = end + 1
            continue
        literal.append(template[position])
        position += 1
    sample.text("".join(literal))
    return sample


def person(
    rng: random.Random,
    first_names: list[str] = FIRST_NAMES,
    last_names: list[str] = LAST_NAMES,
) -> str:
    return f"{rng.choice(first_names)} {rng.choice(last_names)}"


def email_for(name: str, rng: random.Random) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    first, last = ascii_name.lower().replace("'", "").split(" ", 1)
    local = rng.choice(
        [f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}", first]
    )
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


PROSE_TEMPLATES = [
    "Hi team, {person} from {city} asked me to forward the contract. You can reach her at {email} or {phone}.",
    "Please summarize this complaint: my name is {person}, I live in {city}, and my card {card} was charged twice.",
    "Draft a polite reply to {person} ({email}) saying the refund to IBAN {iban} will arrive on Friday.",
    "Can you check why {person}'s account keeps locking? Last login came from {ipv4}.",
    "Write a short bio for {person}, a nurse who moved from {city} to {city2} last year.",
    "The applicant {person} gave SSN {ssn} and phone {phone} on the form.",
    "Forward the invoice for customer {customer} to {person} at {email}.",
    "Meeting notes: {person} and {person2} agreed to move the launch. {person2} will call the vendor in {city}.",
    "Translate to French: Dear {person}, your new card ending {card} has been shipped to {city}.",
    "I got a voicemail from {phone} claiming to be {person} from the bank. Is this a scam?",
    "Why is the VPN tunnel to {ipv6} dropping? {person} says the CPU on the gateway is at 100%.",
    "Summarize: {person} reported that the API key {secret} was pasted into a public channel.",
    "My colleague {person} in {city} needs access; her email is {email}.",
]
CHAT_TEMPLATES = [
    "please call {person} tomorrow about the invoice",
    "can you email {person} at {email} and cc me",
    "send the refund to {iban} for {person}",
    "my ssn is {ssn}, is that needed for the form?",
    "ping {person} on {phone} if the build fails again",
]
CODE_TEMPLATES = [
    'def notify():\n    send_mail(to="{email}", subject="Build failed")\n    # owner: {person}\n',
    "const ADMIN_EMAIL = '{email}';\nconst FALLBACK_HOST = '{ipv4}';\n",
    'import os\nOPENAI_API_KEY = "{secret}"\nclient = OpenAI(api_key=OPENAI_API_KEY)\n',
    "DATABASE_URL=postgres://app:{password}@db.internal:5432/orders\nREDIS_URL=redis://cache:6379/0\n",
    "server:\n  host: {ipv4}\n  admin: {email}\ndatabase:\n  user: app\n  password: {password}\n",
    "# .env\nGITHUB_TOKEN={secret}\nLOG_LEVEL=debug\n",
    "curl -H 'Authorization: Bearer {jwt}' https://api.example.com/v1/users\n",
    'ssh_key = """{private_key}"""\n',
    "Server=sql01;Database=billing;User Id=svc_billing;Password={password};\n",
    "aws_access_key_id = {aws_key}\nregion = eu-central-1\n",
]
JSON_TEMPLATES = [
    'Extract the fields from this record: {{"name": "{person}", "email": "{email}", "phone": "{phone}"}}',
    'Here is the payload that failed: {{"customer": "{customer}", "iban": "{iban}", "amount": 120.5}}',
    'Validate this JSON: {{"user": {{"full_name": "{person}", "ssn": "{ssn}", "city": "{city}"}}}}',
    'Log line: {{"level": "warn", "client_ip": "{ipv4}", "msg": "login failed for {email}"}}',
]
CLEAN_TEMPLATES = [
    "id 7f3c9a10-1b2c-4d5e-8046-1297901ea002, due 05.10.2024, ts 1747731000",
    "peer uses std::vector<int> and std::map<std::string, int> in the hot loop",
    "The API returns JSON over HTTPS; the CPU spikes when the SQL query has no index.",
    "Version 3.8.0 was released on 2024-10-05; see commit 9fceb02d0ae598e95dc970b74767f19372d61af8.",
    "Order 884213 shipped in 3 boxes weighing 12.5 kg; tracking number 1Z999AA10123456784.",
    "Set max_tokens to 4096 and temperature to 0.2 for the summarization step.",
    "The build took 12 minutes on 8 cores; the cache hit rate was 93 percent.",
    "Use sha256 and store the digest as hex, e.g. e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.",
    "Please rewrite this paragraph in a friendlier tone and keep it under 100 words.",
    "Compare the quarterly revenue of the two product lines and list three risks.",
    "Refactor the function so it returns early when the list is empty.",
    "Meeting moved to 14:30 UTC on Tuesday; bring the slides about the roadmap.",
]

# Held-out sentences, written before the name heuristics and never used to tune them.
HELDOUT_TEMPLATES = [
    "Ask {person} whether the shipment to {city} can leave before noon.",
    "{person} left a note: the printer on the second floor is broken again.",
    "Thanks for your help, {person}! The report looks great.",
    "Attendees: {person}, {person2}, and the facilities manager.",
    "Hello {person}, this is a reminder that your appointment in {city} is on Monday.",
    "The ticket was opened by {person} and assigned to {person2}.",
    "Ms. {person} asked whether the warranty covers water damage.",
    "Signed, {person}, Head of Procurement",
    "remind {person} to send the slides before the review",
    "who is {person}? they emailed me about the invoice",
    '{{"author": "{person}", "title": "Quarterly plan", "location": "{city}"}}',
    '[{{"id": 17, "assignee": "{person}"}}, {{"id": 18, "assignee": "{person2}"}}]',
    'Fix this config: {{"contact": {{"name": "{person}", "office": "{city}"}}}}',
    "name,city\n{person},{city}\n{person2},{city2}\n",
]
# Organization, product and team names where a person could stand, and code. Nothing
# here is labeled, so every PERSON or LOCATION found in them lowers precision.
DECOY_TEMPLATES = [
    "Please call Northwind Traders tomorrow about the invoice.",
    "Meeting notes: Globex Corporation and Initech agreed to move the launch.",
    'Extract the fields from this record: {"name": "Quarterly Sales Report", '
    '"owner_team": "Platform Engineering"}',
    '{"name": "Billing Service", "version": "2.4.1", "region": "eu-west-1"}',
    "Ask Customer Success whether the renewal for Blue Harbor Logistics is signed.",
    "The Acme Analytics dashboard shows churn rising; Stark Industries renewed.",
    "cc Platform Team and Security Operations on the incident report",
    "Dear Hiring Committee, please find my application attached.",
    "Summarize: Red Falcon Capital reported that the API migration finished.",
    '{"product": "Cloud Storage Pro", "vendor": "Contoso Ltd", "tier": "Gold"}',
    "class CustomerAccount:\n    def send_invoice(self, amount: int) -> None:\n"
    "        self.ledger.append(amount)\n",
    "from django.contrib.auth import get_user_model\nUser = get_user_model()\n",
    "Thanks for your help, Support Team! The Data Platform looks great.",
    "The ticket was opened by Quality Assurance and assigned to Site Reliability.",
    '[{"id": 3, "assignee": "Release Bot"}, {"id": 4, "assignee": "Build Farm"}]',
    "please ping the on-call rotation if the Payments Gateway fails again",
]


def build(rng: random.Random) -> list[dict]:
    records: list[dict] = []

    def slots(heldout: bool = False) -> dict[str, tuple[str, str]]:
        if heldout:
            name = person(rng, HELDOUT_FIRST_NAMES, HELDOUT_LAST_NAMES)
            name2 = person(rng, HELDOUT_FIRST_NAMES, HELDOUT_LAST_NAMES)
            cities = HELDOUT_CITIES
        else:
            name = person(rng)
            name2 = person(rng)
            cities = CITIES
        city = rng.choice(cities)
        return {
            "person": (name, "PERSON"),
            "person2": (name2, "PERSON"),
            "city": (city, "LOCATION"),
            "city2": (rng.choice([c for c in cities if c != city]), "LOCATION"),
            "email": (email_for(name, rng), "EMAIL_ADDRESS"),
            "phone": (fake_phone(rng), "PHONE_NUMBER"),
            "card": (fake_card(rng), "CREDIT_CARD"),
            "iban": (fake_iban(rng), "IBAN_CODE"),
            "ssn": (fake_ssn(rng), "US_SSN"),
            "ipv4": (fake_ipv4(rng), "IP_ADDRESS"),
            "ipv6": (fake_ipv6(rng), "IP_ADDRESS"),
            "secret": (fake_api_key(rng), "SECRET"),
            "aws_key": ("AKIA" + random_token(rng, 16, UPPER_DIGITS), "SECRET"),
            "jwt": (fake_jwt(rng), "SECRET"),
            "password": (fake_password(rng), "SECRET"),
            "private_key": (fake_private_key(rng), "SECRET"),
            "customer": (fake_customer_id(rng), "CUSTOMER_ID"),
        }

    def add(
        template: str, kind: str, case: str = "as_is", heldout: bool = False
    ) -> None:
        values = slots(heldout)
        sample = render(template, values)
        records.append(sample.record(kind, case))

    for _ in range(9):
        for template in PROSE_TEMPLATES:
            add(template, "prose")
    for _ in range(8):
        for template in CHAT_TEMPLATES:
            add(template, "chat_lower", "lower")
    for _ in range(4):
        for template in CHAT_TEMPLATES[:3] + PROSE_TEMPLATES[:2]:
            add(template, "chat_upper", "upper")
    for _ in range(7):
        for template in CODE_TEMPLATES:
            add(template, "code_config")
    for _ in range(7):
        for template in JSON_TEMPLATES:
            add(template, "json_in_prompt")
    for template in CLEAN_TEMPLATES:
        records.append({"kind": "clean", "text": template, "spans": []})
    # Added later; kept after the records above so that those stay unchanged.
    for _ in range(3):
        for template in HELDOUT_TEMPLATES:
            add(template, "heldout", heldout=True)
    for template in DECOY_TEMPLATES:
        records.append({"kind": "decoy", "text": template, "spans": []})
    return records


def main() -> None:
    rng = random.Random(SEED)
    records = build(rng)
    with OUTPUT.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    total = sum(len(record["spans"]) for record in records)
    print(f"wrote {len(records)} texts with {total} labeled spans to {OUTPUT}")


if __name__ == "__main__":
    main()
