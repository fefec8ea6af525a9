"""A believable demo city (祁阳市), built through the same service functions users call."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import select

from server.auth.policy import SYSTEM, Principal
from server.db_types import office_day, utcnow
from server.directory import service as directory
from server.directory.credit_code import ALPHABET, make_credit_code
from server.directory.models import CertificateStatus, CheckItem, Department, Enterprise, User
from server.extensions import db
from server.planning.conflicts import declare_conflict
from server.planning.draws import run_draw
from server.planning.frequency import request_override
from server.planning.joint_plans import create_joint_plan
from server.planning.plans import create_plan
from server.tasks.models import InspectionTask
from server.tasks.service import create_task

DEMO_PASSWORD = "demo-pass-2026"
DIVISION = "431121"  # 祁阳市 administrative division code

DEPARTMENTS = [
    ("SCJG", "市场监管局"), ("STHJ", "生态环境局"), ("JTYS", "交通运输局"),
    ("NYNC", "农业农村局"), ("WLGT", "文旅广体局"), ("YJGL", "应急管理局"),
]

CHECK_ITEMS: dict[str, list[tuple[str, str, str]]] = {
    "SCJG": [
        ("SCJG-01", "营业执照公示情况", "《市场主体登记管理条例》第三十六条"),
        ("SCJG-02", "食品经营许可及从业人员健康证明", "《中华人民共和国食品安全法》第三十五条、第四十五条"),
        ("SCJG-03", "计量器具检定情况", "《中华人民共和国计量法》第九条"),
        ("SCJG-04", "明码标价执行情况", "《中华人民共和国价格法》第十三条"),
        ("SCJG-05", "特种设备使用登记与定期检验", "《中华人民共和国特种设备安全法》第三十三条、第四十条"),
    ],
    "STHJ": [
        ("STHJ-01", "排污许可证执行情况", "《排污许可管理条例》第十七条"),
        ("STHJ-02", "污染防治设施运行情况", "《中华人民共和国环境保护法》第四十一条"),
        ("STHJ-03", "危险废物贮存与转移联单", "《中华人民共和国固体废物污染环境防治法》第八十一条、第八十二条"),
        ("STHJ-04", "环境影响评价与“三同时”", "《建设项目环境保护管理条例》第十五条"),
        ("STHJ-05", "营业执照公示情况", "《市场主体登记管理条例》第三十六条"),
    ],
    "JTYS": [
        ("JTYS-01", "道路运输经营许可", "《中华人民共和国道路运输条例》第十条"),
        ("JTYS-02", "营运车辆技术档案与年审", "《道路运输车辆技术管理规定》第二十九条"),
        ("JTYS-03", "驾驶员从业资格", "《道路运输从业人员管理规定》第六条"),
        ("JTYS-04", "危险货物运输安全管理", "《危险货物道路运输安全管理办法》第八条"),
        ("JTYS-05", "动态监控系统运行", "《道路运输车辆动态监督管理办法》第二十四条"),
    ],
    "NYNC": [
        ("NYNC-01", "农药经营许可与台账", "《农药管理条例》第二十四条、第二十八条"),
        ("NYNC-02", "兽药经营质量管理", "《兽药管理条例》第二十四条"),
        ("NYNC-03", "种子生产经营许可", "《中华人民共和国种子法》第三十一条"),
        ("NYNC-04", "饲料和饲料添加剂质量", "《饲料和饲料添加剂管理条例》第二十条"),
        ("NYNC-05", "畜禽养殖废弃物处理", "《畜禽规模养殖污染防治条例》第十三条"),
    ],
    "WLGT": [
        ("WLGT-01", "娱乐场所经营许可", "《娱乐场所管理条例》第九条"),
        ("WLGT-02", "旅行社业务经营许可", "《旅行社条例》第七条"),
        ("WLGT-03", "网吧未成年人保护措施", "《互联网上网服务营业场所管理条例》第二十一条"),
        ("WLGT-04", "游泳场所安全设施", "《体育场馆运营管理办法》第十条"),
        ("WLGT-05", "营业执照公示情况", "《市场主体登记管理条例》第三十六条"),
    ],
    "YJGL": [
        ("YJGL-01", "安全生产责任制落实", "《中华人民共和国安全生产法》第二十二条"),
        ("YJGL-02", "安全生产教育培训", "《中华人民共和国安全生产法》第二十八条"),
        ("YJGL-03", "危险化学品储存管理", "《危险化学品安全管理条例》第二十四条"),
        ("YJGL-04", "应急预案与演练", "《生产安全事故应急条例》第五条、第八条"),
        ("YJGL-05", "消防安全与疏散通道", "《中华人民共和国消防法》第十六条"),
    ],
}

SURNAMES = "王李张刘陈杨黄赵周吴徐孙胡朱高林何郭马罗梁宋郑谢唐蒋邓彭曾肖田"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红玉兰文斌海波辉鹏"
TOWNS = ["浯溪街道", "长虹街道", "龙山街道", "观音滩镇", "茅竹镇", "大忠桥镇", "肖家村镇", "八宝镇",
         "白水镇", "黄泥塘镇", "进宝塘镇", "潘市镇", "梅溪镇", "羊角塘镇", "下马渡镇", "七里桥镇"]
ROADS = ["祁阳大道", "浯溪路", "建设路", "人民路", "文昌路", "龙山路", "工业园路", "湘江路", "金盆路", "陶铸路"]
BRANDS = ["湘南", "浯溪", "祁山", "永兴", "恒达", "鑫源", "华泰", "盛世", "金穗", "佳美", "顺发", "宏远",
          "绿野", "新城", "福旺", "兴隆", "瑞丰", "长青", "丰泰", "天成"]
KINDS = [  # (business, industry, departments that supervise it)
    ("食品有限公司", "食品生产", ["SCJG", "STHJ", "YJGL"]),
    ("餐饮管理有限公司", "餐饮服务", ["SCJG", "YJGL"]),
    ("化工有限公司", "化学原料制造", ["STHJ", "YJGL", "SCJG"]),
    ("物流有限公司", "道路货物运输", ["JTYS", "YJGL", "SCJG"]),
    ("客运有限公司", "道路旅客运输", ["JTYS", "YJGL"]),
    ("农资经营部", "农资批发零售", ["NYNC", "SCJG"]),
    ("生态养殖专业合作社", "畜禽养殖", ["NYNC", "STHJ"]),
    ("文化娱乐有限公司", "娱乐场所", ["WLGT", "YJGL", "SCJG"]),
    ("旅行社有限公司", "旅行社", ["WLGT", "SCJG"]),
    ("机械制造有限公司", "通用设备制造", ["SCJG", "STHJ", "YJGL"]),
    ("超市有限公司", "零售", ["SCJG", "YJGL"]),
    ("网络服务中心", "上网服务场所", ["WLGT", "YJGL"]),
]


@dataclass
class SeedSummary:
    departments: int = 0
    check_items: int = 0
    enterprises: int = 0
    users: int = 0
    certificates_suspended: int = 0
    devices: int = 0
    inspections: int = 0
    open_tasks: int = 0
    draws: int = 0
    decisions: int = 0
    publications: int = 0
    legal_holds: int = 0
    accounts: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.departments} departments, {self.check_items} check items, {self.enterprises} enterprises, "
                f"{self.users} accounts ({self.certificates_suspended} certificates suspended or revoked), "
                f"{self.devices} devices, "
                f"{self.inspections} joint inspection awaiting review, {self.open_tasks} open visits of today for the "
                f"demo inspectors, {self.draws} double-random draw awaiting the heads' approval, "
                f"{self.decisions} enforcement decisions on two earlier visits (one awaiting legal review), "
                f"{self.publications} public results (one a correction), {self.legal_holds} legal hold")


def _person(rng: random.Random, used: set[str]) -> str:
    while True:
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        if name not in used:
            used.add(name)
            return name


def _credit_code(rng: random.Random, used: set[str]) -> str:
    alnum = [c for c in ALPHABET if c.isdigit() or c in "ABCDEFGHJKLMNPQRTUWXY"]
    while True:
        org_body = "MA" + "".join(rng.choice(alnum) for _ in range(6))
        code = make_credit_code("9", "1", DIVISION, org_body)
        if code not in used:
            used.add(code)
            return code


# The joint inspection the demo leaves for review: two inspectors of each of two departments.
DEMO_TEAM = ("scjg-insp1", "scjg-insp2", "sthj-insp1", "sthj-insp2")


def seed_demo_city(*, if_empty: bool = False, enterprises: int = 200, rng_seed: int = 2021) -> SeedSummary | None:
    """Create the demo city. Returns None when ``if_empty`` and data exists."""
    if if_empty and db.session.scalar(select(Department.id).limit(1)) is not None:
        return None
    rng = random.Random(rng_seed)
    summary = SeedSummary()
    today = office_day(utcnow())  # the offices' day, not the machine's
    departments: dict[str, Department] = {}
    for code, name in DEPARTMENTS:
        departments[code] = directory.create_department(SYSTEM, code, name)
        summary.departments += 1
        for item_code, title, basis in CHECK_ITEMS[code]:
            directory.create_check_item(SYSTEM, {"department_id": departments[code].id, "code": item_code,
                                                 "title": title, "legal_basis": basis, "method": "现场检查、查阅资料"})
            summary.check_items += 1

    used_names: set[str] = set()

    def account(username: str, role: str, dept: str, cert: str | None = None) -> None:
        data = {"username": username, "full_name": _person(rng, used_names), "password": DEMO_PASSWORD,
                "role": role, "department_id": departments[dept].id, "certificate": None}
        if cert:
            data["certificate"] = {"number": cert, "valid_from": today - timedelta(days=rng.randint(200, 1500)),
                                   "valid_until": today + timedelta(days=rng.randint(90, 1200))}
        directory.create_user(SYSTEM, data)
        summary.users += 1

    account("admin", "admin", "SCJG")
    summary.accounts.append("admin            系统管理员 (admin)")
    for index, (code, name) in enumerate(DEPARTMENTS, start=1):
        lower = code.lower()
        account(f"{lower}-head", "head", code)
        account(f"{lower}-supervisor", "supervisor", code)
        if code in ("SCJG", "STHJ", "YJGL"):
            account(f"{lower}-legal", "legal_reviewer", code)
        for n in range(1, 8 if code in ("SCJG", "STHJ") else 7):
            account(f"{lower}-insp{n}", "inspector", code, cert=f"43112{index}{n:03d}{rng.randint(100, 999)}")
        summary.accounts.append(f"{lower}-head / {lower}-supervisor / {lower}-insp1..   {name}")
        # Devices: one bodycam per inspector, a dock and two tablets per department.
        for n in range(1, 8 if code in ("SCJG", "STHJ") else 7):
            inspector = db.session.scalar(select(User.id).where(User.username == f"{lower}-insp{n}"))
            directory.create_device(SYSTEM, {"id": f"{code}-BC{n:02d}", "kind": "bodycam",
                                             "department_id": departments[code].id, "inspector_id": inspector,
                                             "label": f"执法记录仪 {n} 号"})
            summary.devices += 1
        directory.create_device(SYSTEM, {"id": f"{code}-DOCK1", "kind": "dock", "department_id": departments[code].id,
                                         "label": "采集工作站"})
        for n in (1, 2):
            directory.create_device(SYSTEM, {"id": f"{code}-TAB{n}", "kind": "tablet",
                                             "department_id": departments[code].id, "label": f"执法平板 {n} 号"})
        summary.devices += 3

    # A few certificates suspended or revoked, with reasons, as real offices have.
    # Drawn from a list in a fixed order (ids are random), so the same seed gives the same city; the
    # members of the demo's joint inspection keep theirs valid.
    certificates = sorted((c for c in directory.list_certificates(SYSTEM, 200, None).items
                           if c.holder.username not in DEMO_TEAM), key=lambda c: c.number)
    for certificate, status, reason in zip(
            rng.sample(certificates, 4),
            [CertificateStatus.SUSPENDED, CertificateStatus.SUSPENDED, CertificateStatus.SUSPENDED,
             CertificateStatus.REVOKED],
            ["年度执法资格考试未通过，暂扣待补考", "涉嫌违规执法，调查期间暂扣", "离岗培训期间暂扣",
             "调离执法岗位，依规吊销"],
            strict=True):
        directory.change_certificate_status(SYSTEM, certificate, status, reason)
        summary.certificates_suspended += 1

    used_codes: set[str] = set()
    used_enterprise_names: set[str] = set()
    for _ in range(enterprises):
        business, industry, dept_codes = rng.choice(KINDS)
        while True:
            name = f"祁阳市{rng.choice(BRANDS)}{rng.choice(BRANDS)}{business}"
            if name not in used_enterprise_names:
                used_enterprise_names.add(name)
                break
        data = {"credit_code": _credit_code(rng, used_codes), "name": name,
                "address": f"湖南省永州市祁阳市{rng.choice(TOWNS)}{rng.choice(ROADS)}{rng.randint(1, 399)}号",
                "legal_representative": _person(rng, set()), "industry": industry,
                "risk_level": rng.choices(["low", "normal", "high"], [3, 6, 1])[0]}
        directory.create_enterprise(SYSTEM, data, [departments[c] for c in dept_codes])
        summary.enterprises += 1
    _seed_joint_inspection(departments)
    summary.inspections += 1
    summary.open_tasks = _seed_open_tasks(departments)
    summary.draws = _seed_planning(departments)
    _seed_commitments(departments, today)
    enforcement = _seed_enforcement(departments, today)
    summary.decisions, summary.publications = enforcement.decisions, enforcement.publications
    summary.legal_holds = enforcement.holds
    return summary


def _seed_commitments(departments: dict[str, Department], today: date) -> None:
    """Two notification-commitments made to market regulation (§12): one awaiting its check, one found untrue
    (the directory marks that enterprise)."""
    from server.decisions import service as decisions

    market = departments["SCJG"]
    targets = list(db.session.scalars(select(Enterprise).where(Enterprise.supervising_departments.any(
        Department.id == market.id)).order_by(Enterprise.credit_code).limit(2)))
    for n, enterprise in enumerate(targets):
        commitment = decisions.create_commitment(SYSTEM, {
            "department_id": market.id, "enterprise_id": enterprise.id, "matter": "食品经营许可（告知承诺制）",
            "promise": "经营场所已配备冷藏冷冻设施，并建立进货查验记录制度",
            "due_on": today + timedelta(days=30 * (n + 1))})
        if n == 1:
            decisions.record_commitment_result(SYSTEM, commitment.id, {
                "result": "untrue", "note": "现场核查未见冷藏设施，进货查验记录缺失", "checked_on": today})


# Open visits of today for the demo inspectors, so a new user can try the tablet at once: one of each
# department's own, and two joint ones. (lead department, other department or None, team suffixes)
OPEN_VISITS = [
    ("SCJG", None, ("insp1", "insp2")), ("STHJ", None, ("insp1", "insp2")), ("JTYS", None, ("insp1", "insp2")),
    ("NYNC", None, ("insp1", "insp2")), ("WLGT", None, ("insp1", "insp2")), ("YJGL", None, ("insp1", "insp2")),
    ("SCJG", "YJGL", ("insp3", "insp4")), ("STHJ", "NYNC", ("insp3", "insp4")),
]


def _seed_open_tasks(departments: dict[str, Department]) -> int:
    """Dispatched visits of today, each to its own enterprise (no visit folds into another)."""
    now = utcnow().replace(microsecond=0)
    taken = set(db.session.scalars(select(InspectionTask.enterprise_id)))
    enterprises = list(db.session.scalars(select(Enterprise).order_by(Enterprise.credit_code)))
    made = 0
    for lead, other, suffixes in OPEN_VISITS:
        codes = [lead] + ([other] if other else [])
        wanted = {departments[c].id for c in codes}
        enterprise = next(e for e in enterprises if e.id not in taken
                          and wanted <= {d.id for d in e.supervising_departments})
        taken.add(enterprise.id)
        members = list(db.session.scalars(select(User.id).where(
            User.username.in_([f"{c.lower()}-{s}" for c in codes for s in suffixes])).order_by(User.username)))
        items = [i for c in codes for i in db.session.scalars(
            select(CheckItem.id).where(CheckItem.department_id == departments[c].id).order_by(CheckItem.code).limit(3))]
        title = ("联合检查：" if other else "日常检查：") + enterprise.name
        create_task(SYSTEM, {"title": title, "enterprise_id": enterprise.id, "lead_department_id": departments[lead].id,
                             "window_start": now - timedelta(hours=1), "window_end": now + timedelta(hours=10),
                             "member_ids": members, "check_item_ids": items})
        made += 1
    db.session.flush()
    return made


def _seed_planning(departments: dict[str, Department]) -> int:
    """A year's spot-check plans of market regulation and emergency management for food producers, merged
    into one joint plan, and its double-random draw for next month: its visits wait for both heads'
    approval. Plus a declared conflict of interest and a pending request for one visit beyond the cap."""
    from server.directory.models import CheckItem, Enterprise

    today = office_day(utcnow())
    market, safety = departments["SCJG"], departments["YJGL"]

    def items(department: Department, codes: list[str]) -> list[object]:
        return list(db.session.scalars(select(CheckItem.id).where(
            CheckItem.department_id == department.id, CheckItem.code.in_(codes)).order_by(CheckItem.code)))

    def office_principal(username: str) -> Principal:
        user = db.session.scalar(select(User).where(User.username == username))
        assert user is not None
        return Principal("user", str(user.id), user.role.value, user.department_id)

    period = {"period_start": today, "period_end": today + timedelta(days=365)}
    plans = [
        create_plan(SYSTEM, {"title": f"市场监管局{today.year}年度食品生产企业双随机抽查计划",
                             "subject_kind": "食品生产企业",
                             "department_id": market.id, **period, "target_filter": {"industries": ["食品生产"]},
                             "sampling_ratio": 0.2, "check_item_ids": items(market, ["SCJG-01", "SCJG-02"])}),
        create_plan(SYSTEM, {"title": f"应急管理局{today.year}年度食品生产企业安全生产抽查计划",
                             "subject_kind": "食品生产企业", "department_id": safety.id, **period,
                             "target_filter": {"industries": ["食品生产"]}, "sampling_ratio": 0.2,
                             "check_item_ids": items(safety, ["YJGL-01", "YJGL-05"])}),
    ]
    joint = create_joint_plan(SYSTEM, {"title": "食品生产企业跨部门联合双随机抽查", "plan_ids": [p.id for p in plans],
                                       "department_id": market.id, "target_filter": {"industries": ["食品生产"]},
                                       "sampling_ratio": 0.2, "equivalences": []})
    office = timezone(timedelta(hours=8))
    first_day = today + timedelta(days=30)
    start = datetime(first_day.year, first_day.month, first_day.day, 9, tzinfo=office)
    run_draw(office_principal("scjg-supervisor"), {
        "joint_plan_id": joint.id, "window_start": start, "window_end": start + timedelta(days=4, hours=8),
        "inspectors_per_department": 2, "seed": "qiyang-demo-2026"})
    enterprise = db.session.scalars(select(Enterprise).where(Enterprise.industry == "餐饮服务")
                                    .order_by(Enterprise.credit_code)).first()
    inspector = db.session.scalar(select(User.id).where(User.username == "yjgl-insp6"))
    if enterprise is not None:
        declare_conflict(SYSTEM, {"user_id": inspector, "enterprise_id": enterprise.id,
                                  "reason": "其配偶在该企业担任财务负责人，依规回避"})
        request_override(office_principal("scjg-supervisor"), {
            "enterprise_id": enterprise.id, "reason": "群众投诉反映该店后厨卫生问题，需在本周期内再次检查"})
    db.session.flush()
    return 1


def _seed_joint_inspection(departments: dict[str, Department]) -> None:
    """One joint visit this morning, synced by two tablets as the field client would, with a
    certificate photo showing two of the four members' certificates: the worker verifies the photo
    and the review queue has a record with flags to look at."""
    import time
    import uuid

    import cv2
    import numpy as np

    from server.auth.policy import Principal
    from server.directory.models import CheckItem, Enterprise
    from server.sync import service as sync
    from server.sync.entities import inspection_id_for
    from server.tasks.service import create_task
    from server.uploads.models import Media, MediaObject
    from server.uploads.service import on_media_stored, uploads

    market, ecology = departments["SCJG"], departments["STHJ"]
    people = {u.username: u for u in db.session.scalars(select(User).where(User.username.in_(DEMO_TEAM)))}
    enterprise = next(e for e in db.session.scalars(select(Enterprise).order_by(Enterprise.name))
                      if {market.id, ecology.id} <= {d.id for d in e.supervising_departments})
    items = {d.code: db.session.scalars(select(CheckItem).where(CheckItem.department_id == d.id)
                                        .order_by(CheckItem.code)).first() for d in (market, ecology)}
    now = utcnow().replace(microsecond=0)
    started, ended = now - timedelta(hours=3), now - timedelta(hours=2, minutes=20)
    task = create_task(SYSTEM, {
        "title": f"联合检查：{enterprise.name}", "enterprise_id": enterprise.id, "lead_department_id": market.id,
        "window_start": started - timedelta(hours=1), "window_end": now + timedelta(hours=8),
        "member_ids": [people[u].id for u in DEMO_TEAM],
        "check_item_ids": [items["SCJG"].id, items["STHJ"].id], "late_registration_reason": DEMO_LATE_REASON})
    db.session.flush()
    inspection_id, photo_id = str(inspection_id_for(task.id)), str(uuid.uuid4())

    # The certificate photo (亮证): two QR codes on a plain scene, as a tablet would take it.
    picture = np.full((720, 1280, 3), (200, 210, 190), np.uint8)
    holders = [people["scjg-insp1"], people["sthj-insp1"]]
    for index, holder in enumerate(holders):
        code = cv2.resize(cv2.QRCodeEncoder.create().encode(holder.certificates[0].number), None, fx=8, fy=8,
                          interpolation=cv2.INTER_NEAREST)
        code = cv2.copyMakeBorder(code, 24, 24, 24, 24, cv2.BORDER_CONSTANT, value=255)
        y, x = 160, 120 + index * 560
        picture[y:y + code.shape[0], x:x + code.shape[1]] = code[..., None]
    photo = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    stored = uploads().store.put([photo])

    def push(user: User, tablet: str, mutations: list[tuple[str, str, dict[str, object]]]) -> None:
        # As a tablet pushes: logged in on that tablet.
        principal = Principal("user", str(user.id), user.role.value, user.department_id, tablet)
        batch = [{"id": uuid.uuid4(), "entity": entity, "entity_id": uuid.UUID(entity_id), "op": "upsert",
                  "base_version": 0, "hlc": f"{int(time.time() * 1000):013d}-{n:04x}-{tablet}", "fields": fields}
                 for n, (entity, entity_id, fields) in enumerate(mutations)]
        results = sync.push(principal, tablet, batch, timedelta(minutes=5))
        refused = [r for r in results if r.status not in ("applied", "duplicate")]
        if refused:
            raise RuntimeError("demo inspection refused: " + "; ".join(f"{r.code}: {r.reason}" for r in refused))

    push(people["scjg-insp1"], "SCJG-TAB1", [
        ("inspection", inspection_id, {"task_id": str(task.id), "started_at": started.isoformat(),
                                       "inspection_code": _code_of(task),
                                       "ended_at": ended.isoformat(), "place": enterprise.address,
                                       "representative": enterprise.legal_representative, "status": "finished",
                                       "soft_measures": ["提醒企业及时更新公示信息"]}),
        ("finding", str(uuid.uuid4()), {"inspection_id": inspection_id, "check_item_id": str(items["SCJG"].id),
                                        "result": "compliant", "note": "营业执照已在显著位置公示",
                                        "recorded_at": (started + timedelta(minutes=10)).isoformat()}),
        ("media", photo_id, {"inspection_id": inspection_id, "sha256": stored.sha256, "size": stored.size,
                             "proves": "certificate", "content_type": "image/jpeg", "file_name": "IMG_0001.jpg",
                             "capture_start": (started + timedelta(minutes=1)).isoformat()}),
    ])
    push(people["sthj-insp1"], "STHJ-TAB1", [
        ("finding", str(uuid.uuid4()), {"inspection_id": inspection_id, "check_item_id": str(items["STHJ"].id),
                                        "result": "non_compliant", "note": "危险废物贮存场所未设置识别标志",
                                        "recorded_at": (started + timedelta(minutes=25)).isoformat()}),
    ])
    if db.session.get(MediaObject, stored.sha256) is None:
        db.session.add(MediaObject(sha256=stored.sha256, size=stored.size, backend=stored.backend, key=stored.key))
        db.session.flush()
    media = Media(id=uuid.UUID(photo_id), sha256=stored.sha256, size=stored.size, department_id=market.id,
                  task_id=task.id, content_type="image/jpeg", file_name="IMG_0001.jpg",
                  capture_start=started + timedelta(minutes=1), uploaded_by_user_id=people["scjg-insp1"].id)
    db.session.add(media)
    db.session.flush()
    on_media_stored(media)  # the worker verifies it once the seed commits


#: The demo's past visits are registered now, after they took place: late registrations, as the flags say.
DEMO_LATE_REASON = "演示数据：检查结束后补登记"


def _code_of(task: InspectionTask) -> str | None:
    """The inspection code the team's tablet held for the task (recorded on the inspection it starts)."""
    from server.codes.service import issued_code

    code = issued_code(task)
    return code.token if code else None


def _principal(username: str, device: str | None = None) -> Principal:
    user = db.session.scalar(select(User).where(User.username == username))
    assert user is not None, username
    return Principal("user", str(user.id), user.role.value, user.department_id, device)


def _field_team(code: str, count: int = 2) -> list[User]:
    """Inspectors of a department outside the demo's other visits (insp1..4) whose certificate is valid."""
    lower = code.lower()
    users = db.session.scalars(select(User).where(User.username.like(f"{lower}-insp%")).order_by(User.username))
    free = [u for u in users if u.username.rsplit("insp", 1)[1] not in ("1", "2", "3", "4")
            and all(c.status == CertificateStatus.VALID for c in u.certificates)]
    return free[:count]


def _approved_inspection(departments: list[Department], day: date, findings: list[tuple[str, str, str]]) -> object:
    """A visit on ``day`` by two inspectors of each department, pushed by the lead's tablet as the field client
    would and approved by the lead's supervisor: what a decision is recorded on. ``findings``: (check item
    code, result, note). Returns the inspection id."""
    import time
    import uuid

    from server.review import service as review
    from server.review.models import DecisionKind as ReviewKind
    from server.sync import service as sync
    from server.sync.entities import inspection_id_for

    lead = departments[0]
    taken = set(db.session.scalars(select(InspectionTask.enterprise_id)))
    wanted = {d.id for d in departments}
    enterprise = next(e for e in db.session.scalars(select(Enterprise).order_by(Enterprise.credit_code))
                      if e.id not in taken and wanted <= {d.id for d in e.supervising_departments})
    team = [u for d in departments for u in _field_team(d.code)]
    items = {i.code: i for i in db.session.scalars(select(CheckItem).where(
        CheckItem.code.in_([code for code, _, _ in findings])))}
    office = timezone(timedelta(hours=8))
    started = datetime(day.year, day.month, day.day, 9, 30, tzinfo=office).astimezone(UTC)
    ended = started + timedelta(hours=1, minutes=10)
    title = ("联合检查：" if len(departments) > 1 else "日常检查：") + enterprise.name
    task = create_task(SYSTEM, {"title": title, "enterprise_id": enterprise.id, "lead_department_id": lead.id,
                                "window_start": started - timedelta(hours=1), "window_end": ended + timedelta(hours=6),
                                "member_ids": [u.id for u in team], "check_item_ids": [i.id for i in items.values()],
                                "late_registration_reason": DEMO_LATE_REASON})
    db.session.flush()
    inspection_id = str(inspection_id_for(task.id))
    record: dict[str, object] = {"task_id": str(task.id), "started_at": started.isoformat(),
                                 "inspection_code": _code_of(task),
                                 "ended_at": ended.isoformat(), "place": enterprise.address,
                                 "representative": enterprise.legal_representative, "status": "finished",
                                 "soft_measures": ["当场指出问题并提出整改要求"]}
    # Each department's inspector records its own department's findings on its own tablet (as the client does).
    for department in departments:
        mutations: list[tuple[str, str, dict[str, object]]] = []
        if department is lead:
            mutations.append(("inspection", inspection_id, record))
        for n, (code, result, note) in enumerate(findings):
            if items[code].department_id == department.id:
                mutations.append(("finding", str(uuid.uuid4()), {
                    "inspection_id": inspection_id, "check_item_id": str(items[code].id), "result": result,
                    "note": note, "recorded_at": (started + timedelta(minutes=10 + 15 * n)).isoformat()}))
        tablet = f"{department.code}-TAB2"
        pusher = next(u for u in team if u.department_id == department.id)
        batch = [{"id": uuid.uuid4(), "entity": entity, "entity_id": uuid.UUID(entity_id), "op": "upsert",
                  "base_version": 0, "hlc": f"{int(time.time() * 1000):013d}-{n:04x}-{tablet}", "fields": fields}
                 for n, (entity, entity_id, fields) in enumerate(mutations)]
        results = sync.push(_principal(pusher.username, tablet), tablet, batch, timedelta(minutes=5))
        refused = [r for r in results if r.status not in ("applied", "duplicate")]
        if refused:
            raise RuntimeError("demo inspection refused: " + "; ".join(f"{r.code}: {r.reason}" for r in refused))
    review.decide(_principal(f"{lead.code.lower()}-supervisor"), uuid.UUID(inspection_id), ReviewKind.APPROVE,
                  "记录完整，同意")
    return uuid.UUID(inspection_id)


def _decision_day(today: date, days_left: int) -> date:
    """The latest day a rectify order (20 working days) made on it has ``days_left`` working days left
    today; beyond the calendar (chinesecalendar knows up to one year), four weeks ago."""
    from server.publication import calendar

    try:
        for back in range(1, 60):
            day = today - timedelta(days=back)
            deadline = calendar.publication_deadline(day, False)
            if deadline >= today and calendar.working_days_between(today, deadline) <= days_left:
                return day
    except calendar.CalendarOutOfRange:
        pass
    return today - timedelta(days=28)


@dataclass
class EnforcementSummary:
    decisions: int = 0
    publications: int = 0
    holds: int = 0


def _seed_enforcement(departments: dict[str, Department], today: date) -> EnforcementSummary:
    """Enforcement after two earlier visits, through the services users call (issue 15):

    - a joint visit of market regulation, ecology and emergency management: market regulation's penalty above
      the threshold awaits its legal reviewer (scjg-legal's queue); ecology's penalty was signed off by its
      legal reviewer, made and served today (publication due within 7 working days); emergency management's
      rectify order was made weeks ago and served (its 20-working-day deadline is within three working days).
      The case is under a legal hold (a complaint is pending).
    - a routine visit of market regulation: its rectify order made and served, published on the public page
      and then corrected once.
    """
    from server.archive.models import HeldObject
    from server.archive.retention import place_hold
    from server.decisions import service as decisions
    from server.publication import service as publication

    made = EnforcementSummary()
    market, ecology, safety = departments["SCJG"], departments["STHJ"], departments["YJGL"]
    soon_day = _decision_day(today, 2)
    joint = _approved_inspection([market, ecology, safety], soon_day - timedelta(days=3), [
        ("SCJG-02", "non_compliant", "两名从业人员未取得健康证明即上岗"),
        ("STHJ-03", "non_compliant", "危险废物未按规定填写转移联单，擅自交由无资质单位处置"),
        ("YJGL-05", "non_compliant", "二楼疏散通道堆放杂物，安全出口指示灯损坏"),
    ])
    # Market regulation: a major penalty, waiting for the legal reviewer.
    decisions.create_decision(_principal("scjg-supervisor"), joint, {
        "kind": "penalty", "amount_yuan": Decimal("50000.00"),
        "conclusion": "安排未取得健康证明的人员从事接触直接入口食品的工作，责令改正，给予警告并处罚款",
        "legal_basis": "《中华人民共和国食品安全法》第一百二十六条第一款第（六）项"})
    # Ecology: a major penalty, signed off by its legal reviewer, made and served today.
    penalty = decisions.create_decision(_principal("sthj-supervisor"), joint, {
        "kind": "penalty", "amount_yuan": Decimal("30000.00"),
        "conclusion": "未按规定填写危险废物转移联单，擅自将危险废物提供给无经营许可证的单位，处以罚款",
        "legal_basis": "《中华人民共和国固体废物污染环境防治法》第一百一十二条第一款第（四）、（五）项"})
    decisions.sign_off(_principal("sthj-legal"), penalty.id, {
        "outcome": "approved", "reviewed_on": today,
        "opinion": "事实清楚，证据确凿，适用法律正确，程序合法，罚款数额在法定幅度内，同意作出处罚决定"})
    decisions.make_decision(_principal("sthj-supervisor"), penalty.id, today)
    decisions.serve_decision(_principal("sthj-supervisor"), penalty.id, today)
    # Emergency management: an ordinary rectify order, made weeks ago and served the next day.
    order = decisions.create_decision(_principal("yjgl-supervisor"), joint, {
        "kind": "rectify_order", "rectify_by": soon_day + timedelta(days=15),
        "conclusion": "疏散通道堆放杂物、安全出口指示标志损坏，责令限期清理并修复",
        "legal_basis": "《中华人民共和国消防法》第六十条第一款第（三）、（五）项"})
    decisions.make_decision(_principal("yjgl-supervisor"), order.id, soon_day)
    decisions.serve_decision(_principal("yjgl-supervisor"), order.id, min(soon_day + timedelta(days=1), today))
    made.decisions += 3
    place_hold(_principal("scjg-head"), HeldObject.INSPECTION, joint,
               "当事人已就处罚事项申请行政复议，复议期间保全全部案卷和执法记录")
    made.holds += 1

    # Market regulation's routine visit: a rectify order made and served, published, then corrected.
    routine_day = today - timedelta(days=12)
    routine = _approved_inspection([market], routine_day - timedelta(days=2), [
        ("SCJG-04", "non_compliant", "部分商品未标明价格，价签与实际售价不一致"),
    ])
    notice = decisions.create_decision(_principal("scjg-supervisor"), routine, {
        "kind": "rectify_order", "rectify_by": routine_day + timedelta(days=10),
        "conclusion": "部分商品未明码标价，责令限期改正",
        "legal_basis": "《中华人民共和国价格法》第十三条、第四十二条"})
    decisions.make_decision(_principal("scjg-supervisor"), notice.id, routine_day)
    decisions.serve_decision(_principal("scjg-supervisor"), notice.id, routine_day + timedelta(days=1))
    made.decisions += 1
    first = publication.publish(_principal("scjg-supervisor"), notice.id)
    publication.correct(_principal("scjg-supervisor"), first.id, "原公开的执法结论漏写整改期限，予以更正",
                        "部分商品未明码标价，责令于十日内改正")
    made.publications += 2
    db.session.flush()
    return made
