"""The console's message catalogue: Simplified Chinese by default, English on request.

Templates call ``t("key")``; the JavaScript gets the same table as JSON. A missing key
shows the key itself, so a gap is visible rather than blank.
"""

from __future__ import annotations

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

# key: (中文, English)
MESSAGES: dict[str, tuple[str, str]] = {
    "app.title": ("联防 · 智慧社区安防", "Lianfang · community security"),
    "nav.command": ("指挥中心", "Command centre"),
    "nav.desk": ("接警台", "Alarm desk"),
    "nav.grid": ("网格员", "Grid worker"),
    "nav.resident": ("居民", "Resident"),
    "nav.devices": ("设备", "Devices"),
    "nav.rules": ("规则与路由", "Rules & routing"),
    "nav.logout": ("退出", "Sign out"),
    "lang.switch": ("English", "中文"),
    "login.title": ("登录", "Sign in"),
    "login.user": ("用户名", "User name"),
    "login.password": ("密码", "Password"),
    "forbidden.title": ("无权查看", "Not allowed"),
    "forbidden.text": (
        "您的角色或网格范围不包含此页面或事件。",
        "Your role or grid scope does not include this page or incident.",
    ),
    "notfound.title": ("未找到", "Not found"),
    "back.home": ("返回首页", "Back to my page"),
    # command centre
    "cmd.events": ("实时事件", "Live events"),
    "event.late": ("迟到", "late"),
    "event.late_title": (
        "设备时间早于接收时间超过容差：仅一键报警与离线规则评估了此事件",
        "Received later than the tolerance after its device time: only panic and absence "
        "rules used this event",
    ),
    "cmd.open": ("待办事件（按等级）", "Open incidents by severity"),
    "cmd.today": ("今日数据", "Today"),
    "cmd.month": ("本月数据", "This month"),
    "cmd.ranking": ("本月社区得分排名", "Community ranking this month"),
    "cmd.siteplan": ("小区平面图 · 设备状态", "Site plan · device states"),
    "cmd.video": ("实时视频", "Live video"),
    "stat.total": ("事件", "Incidents"),
    "stat.closed": ("办结", "Closed"),
    "stat.closing_rate": ("办结率", "Closing rate"),
    "stat.in_cell": ("格内办结", "Closed in cell"),
    "stat.ack_p50": ("响应中位", "Ack p50"),
    "rank.score": ("得分", "Score"),
    "rank.name": ("社区", "Community"),
    "dev.online": ("在线", "Online"),
    "dev.offline": ("离线", "Offline"),
    "dev.unknown": ("未知", "Unknown"),
    # police desk
    "desk.title": ("派出所接警台", "Police alarm desk"),
    "desk.incoming": ("紧急报警", "Incoming alarm"),
    "desk.queue": ("P1 / 一键报警", "P1 and panic alarms"),
    "desk.none": ("暂无待处理报警", "No open alarms"),
    "desk.address": ("住户地址", "Household address"),
    "desk.neighbours": ("已通知邻居", "Neighbours notified"),
    "desk.camera": ("最近摄像机", "Nearest camera"),
    "desk.snapshot": ("抓拍", "Snapshot"),
    "desk.clock": ("升级倒计时", "Escalation clock"),
    "desk.acked": ("已确认", "Acknowledged"),
    "desk.escalated": ("已超时升级", "Deadline passed: escalated"),
    "desk.sound": ("启用声音", "Enable sound"),
    "desk.contacts": ("住户联系人", "Household contacts"),
    "desk.show_phones": ("显示电话", "Show phone numbers"),
    "desk.phones_recorded": (
        "已记录查看：本次查看电话已写入审计日志",
        "Recorded: this reveal of the numbers is in the audit log",
    ),
    "desk.phones_denied": (
        "您的角色无权查看住户电话（需要 pii:read）",
        "Your role may not see household phone numbers (needs pii:read)",
    ),
    "desk.no_contacts": ("未登记联系人", "No contacts on record"),
    "desk.phone_unavailable": ("号码无法解密", "Number cannot be decrypted"),
    "desk.phone_masked": (
        "号码已脱敏；“显示电话”可查看完整号码（记入审计）",
        "Masked number: “Show phone numbers” reveals it in full (audited)",
    ),
    "act.acknowledge": ("确认接警", "Acknowledge"),
    "act.dispatch": ("派遣", "Dispatch"),
    "act.accept": ("接单处置", "Accept"),
    "act.feedback": ("反馈结果", "Send feedback"),
    "act.verify": ("核实办结", "Verify"),
    "act.reject": ("退回", "Reject"),
    "act.comment": ("添加备注", "Add note"),
    "act.evaluate": ("评价", "Evaluate"),
    "act.false_alarm": ("误报", "False alarm"),
    "act.attach": ("上传照片", "Upload photo"),
    "act.open": ("发现", "Opened"),
    "act.notify": ("通知", "Notified"),
    "act.signal": ("信号", "Signal"),
    "act.escalate": ("升级", "Escalated"),
    "act.cancel": ("撤销", "Cancel"),
    "act.reopen": ("重新打开", "Reopen"),
    "note.placeholder": ("备注 / 处理情况", "Note / what was done"),
    "assignee": ("派遣给", "Assign to"),
    # grid worker
    "grid.mine": ("我的事件", "My incidents"),
    "grid.none": ("暂无事件", "No incidents"),
    "grid.photo": ("拍照 / 选择照片", "Take or choose a photo"),
    # resident
    "res.alarm": ("一键报警", "Emergency alarm"),
    "res.hold": ("按住 2 秒报警", "Press and hold for 2 s"),
    "res.cancel_window": ("即将发送…点此取消", "Sending… tap to cancel"),
    "res.cancelled": ("已取消，未发送", "Cancelled, nothing sent"),
    "res.sent": ("已发送 — 救援正在赶来", "Sent — help is coming"),
    "res.acked_by": ("已确认接警：", "Acknowledged by: "),
    "res.waiting": ("等待接警确认…", "Waiting for acknowledgement…"),
    "res.report": ("随手报", "Report a hazard"),
    "res.text": ("描述隐患", "Describe the hazard"),
    "res.where": ("位置", "Location"),
    "res.locate": ("获取定位", "Use my location"),
    "res.submit": ("提交", "Submit"),
    "res.submitted": ("已提交，网格员将前往核实", "Submitted: a grid worker will check it"),
    "res.my_reports": ("我的上报", "My reports"),
    # devices
    "devices.title": ("设备管理", "Devices"),
    "devices.last_seen": ("最后上报", "Last seen"),
    "devices.battery": ("电量", "Battery"),
    "devices.kind": ("类型", "Kind"),
    "devices.place": ("位置", "Place"),
    "devices.edit": ("添加 / 编辑设备", "Add or edit a device"),
    "devices.check": ("仅检查（生成站点文件行）", "Check only (site file line)"),
    "devices.save": ("保存并启用", "Save and use"),
    "devices.added": ("已添加，立即生效", "Added: in use now"),
    "devices.edited": ("已修改，立即生效", "Changed: in use now"),
    "devices.site": ("小区", "Compound"),
    "devices.name": ("名称", "Name"),
    "devices.zone": ("防区", "Zone"),
    "devices.household": ("住户", "Household"),
    "devices.camera": ("关联摄像机", "Linked camera"),
    "devices.heartbeat": ("心跳周期（秒）", "Heartbeat (s)"),
    "devices.console": ("控制台编辑", "edited in console"),
    "devices.delete": ("删除设备", "Delete device"),
    "devices.delete_confirm": (
        "确定删除设备 {id}？它将立即停止接入（其消息按未登记设备隔离），已存储的事件保留。",
        "Delete device {id}? It stops being accepted at once (its messages are quarantined as "
        "an unknown device's); its stored events are kept.",
    ),
    "devices.deleted": ("已删除，已存储的事件保留", "Deleted: its stored events are kept"),
    "devices.payload": (
        "粘贴样例报文，查看规范化事件",
        "Paste a sample payload: see the normalised event",
    ),
    "devices.profile": ("设备档案", "Profile"),
    "devices.topic": ("主题", "Topic"),
    "devices.normalise": ("规范化", "Normalise"),
    # rules
    "rules.title": ("规则", "Rules"),
    "rules.state": ("状态", "State"),
    "rules.last": ("最近触发", "Last fired"),
    "rules.enable": ("启用", "Enable"),
    "rules.disable": ("停用", "Disable"),
    "rules.enabled": ("启用中", "Enabled"),
    "rules.disabled": ("已停用", "Disabled"),
    "routing.title": ("路由测试", "Routing tester"),
    "routing.run": ("测试", "Test"),
    # incident
    "inc.progress": ("处置进度", "Progress"),
    "inc.timeline": ("时间线", "Timeline"),
    "inc.evidence": ("证据", "Evidence"),
    "inc.deliveries": ("通知及送达", "Notifications and delivery"),
    "inc.audit": ("审计记录", "Audit entries"),
    "inc.actions": ("操作", "Actions"),
    "inc.open": ("查看", "Open"),
    "stage.discovered": ("发现问题", "Discovered"),
    "stage.dispatched": ("流转信息", "Dispatched"),
    "stage.handling": ("处置问题", "Handling"),
    "stage.feedback": ("反馈结果", "Feedback"),
    "stage.verified": ("核实核准", "Verified"),
    "stage.evaluated": ("监督评价", "Evaluated"),
    "stage.false_alarm": ("误报", "False alarm"),
    "stage.cancelled": ("已撤销", "Cancelled"),
    "cat.panic": ("一键报警", "Panic alarm"),
    "cat.intrusion": ("周界入侵", "Intrusion"),
    "cat.access": ("门禁", "Access"),
    "cat.vehicle": ("车辆", "Vehicle"),
    "cat.device-health": ("设备故障", "Device health"),
    "cat.hazard": ("安全隐患", "Hazard"),
    "cat.dispute": ("矛盾纠纷", "Dispute"),
    "cat.fire": ("消防", "Fire"),
    "cat.public-order": ("治安", "Public order"),
    "cat.rental": ("出租房", "Rented housing"),
    "cat.other": ("其他", "Other"),
    "status.sent": ("已送达", "Sent"),
    "status.pending": ("待发送", "Pending"),
    "status.retry": ("重试中", "Retrying"),
    "status.dead": ("失败", "Failed"),
    "status.cancelled": ("已取消", "Cancelled"),
    "error": ("出错了", "Something went wrong"),
    "loading": ("加载中…", "Loading…"),
}


def pick_lang(value: str | None) -> str:
    return value if value in LANGS else DEFAULT_LANG


def catalogue(lang: str) -> dict[str, str]:
    i = LANGS.index(pick_lang(lang))
    return {k: v[i] for k, v in MESSAGES.items()}


def translate(lang: str, key: str) -> str:
    entry = MESSAGES.get(key)
    return entry[LANGS.index(pick_lang(lang))] if entry else key
