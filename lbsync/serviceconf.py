"""A Service's annotations, validated: Service-wide values, per-port overrides, and the
Backend each Service port asks for (before conflicts between Services are settled).

Split from lbsync.model (which decides what is published and settles conflicts). Pure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Protocol, Set, Tuple

from lbsync import annotations as ann
from lbsync.annotations import Invalid
from lbsync.endpoints import Server
from lbsync.topology import Backend, Options, Reporter


class ServerSource(Protocol):
    """Where a Service port's servers come from (its Pods or the nodes; see lbsync.model)."""

    def for_port(self, port: dict, report: Reporter) -> Optional[Tuple[Server, ...]]: ...

    def checked(self, backend: Backend) -> Backend: ...


@dataclass
class ServiceConf:
    """A Service's validated annotations: Service-wide values and per-port overrides."""

    service: Dict[str, object]
    ports: Dict[str, Dict[str, object]]  # port name or number -> per-port values
    options: Options

    _PARSERS = {"lb.host": ann.hosts, "lb.sslTerm": ann.boolean, "lb.cookie-sticky-session": ann.boolean,
                "lb.algorithm": ann.algorithm, "lb.path-prefix": ann.path_prefix,
                "lb.check-interval": ann.duration_ms, "lb.check-path": ann.check_path,
                "lb.tcp": ann.tcp_ports, "lb.backend-mode": ann.backend_mode}

    @classmethod
    def parse(cls, raw: dict, spec_ports: list, options: Options, report: Reporter) -> "ServiceConf":
        service_raw, port_raw, unknown = ann.split(raw)
        for key in unknown:
            report(_cut(key), "unknown annotation (typo?); ignored", code="UnknownAnnotation")
        service = cls._parse_all(service_raw, "", report)
        if "lb.backend-mode" in service_raw and "lb.backend-mode" not in service:
            report(ann.PREFIX + "lb.backend-mode", f"using the setting backend_mode ({options.backend_mode})", "info",
                   code="DefaultBackendMode")
        refs = _port_refs(spec_ports)
        ports = {}
        for ref, values in port_raw.items():
            if ref not in refs:
                report(f"{ann.PREFIX}{next(iter(values))}.{_cut(ref)}", "names no port of this Service; ignored",
                       code="AnnotationNamesNoPort")
                continue
            ports[ref] = cls._parse_all(values, "." + ref, report)
        return cls(service, ports, options)

    @classmethod
    def _parse_all(cls, values: Dict[str, str], suffix: str, report: Reporter) -> Dict[str, object]:
        out = {}
        for key, value in values.items():
            if key in ("lb.enabled", "lb.ignore"):
                continue
            try:
                out[key] = cls._PARSERS[key](value)
            except Invalid as e:
                report(ann.PREFIX + key + suffix, f"{e.why}; annotation ignored", code="InvalidAnnotation",
                       value=e.shown)
        if out.get("lb.algorithm") is None and "lb.algorithm" in values:
            report(ann.PREFIX + "lb.algorithm", "using the default, roundrobin", "info", code="DefaultAlgorithm")
        return out

    def get(self, key: str, port: dict, default: object = None) -> object:
        if self.ports:  # most Services have no per-port annotation: 7 calls a port, 10,000 ports
            for ref in (str(port.get("port")), port.get("name") or ""):
                if ref and key in self.ports.get(ref, {}):
                    return self.ports[ref][key]
        return self.service.get(key, default)

    def tcp_listen(self, port: dict) -> Optional[int]:
        for expose in self.service.get("lb.tcp") or ():
            if expose.port_ref in (str(port.get("port")), port.get("name")):
                return expose.listen_port or int(port["port"])
        return None

    def backend_for(self, ns: str, name: str, port: dict, source: "ServerSource",
                    report: Reporter) -> Optional[Backend]:
        if not _valid_port(port):
            shown = ann.show(port.get("port") if isinstance(port, dict) else port)
            report("", "a port is not a valid Service port (number 1-65535, name a DNS label); left out",
                   code="InvalidServicePort", value=shown)
            return None
        number, pname = int(port["port"]), port.get("name") or ""
        protocol = port.get("protocol") or "TCP"
        if protocol != "TCP":
            known = protocol if protocol in ("UDP", "SCTP") else "other"  # no untrusted text in a reason
            report("", f"port {number}/{known}: only TCP is load-balanced; left out", "info",
                   code="ProtocolNotSupported", value=ann.show(protocol))
            return None
        servers = source.for_port(port, report)
        if servers is None:
            return None
        common = dict(name=f"{ns}_{name}_{number}", namespace=ns, service=name, port=number, port_name=pname,
                      servers=servers, algorithm=str(self.get("lb.algorithm", port) or "roundrobin"),
                      check_interval_ms=int(self.get("lb.check-interval", port) or self.options.check_interval_ms))
        listen = self.tcp_listen(port)
        if listen is not None:
            return source.checked(Backend(mode="tcp", listen_port=listen, **common))  # type: ignore[arg-type]
        backend = self._http(common, port, report)
        return source.checked(backend) if backend is not None else None

    def _http(self, common: Dict[str, object], port: dict, report: Reporter) -> Optional[Backend]:
        ssl = bool(self.get("lb.sslTerm", port, False))
        if ssl and not self.options.tls:
            report(ann.PREFIX + "lb.sslTerm", f"port {common['port']}: no TLS certificate is configured "
                   "(tls_cert); route left out", code="TLSWithoutCertificate")
            return None
        default_prefix = f"/{common['service']}-{common['port']}" if self.options.path_prefixes else None
        return Backend(mode="http", ssl=ssl, hosts=tuple(self.get("lb.host", port) or ()),  # type: ignore[arg-type]
                       path_prefix=self.get("lb.path-prefix", port, default_prefix),  # None: disabled by annotation
                       sticky=bool(self.get("lb.cookie-sticky-session", port, False)),
                       check_path=self.get("lb.check-path", port), **common)  # type: ignore[arg-type]


def _port_refs(spec_ports: Iterable[object]) -> Set[str]:
    refs = set()
    for port in spec_ports:
        if isinstance(port, dict):
            refs.add(str(port.get("port")))
            if port.get("name"):
                refs.add(str(port["name"]))
    return refs


def _valid_port(port: object) -> bool:
    if not isinstance(port, dict) or not isinstance(port.get("port"), int):
        return False
    pname = port.get("name") or ""
    return 1 <= port["port"] <= 65535 and (pname == "" or bool(ann.PORT_NAME.match(str(pname))))


def _cut(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."
