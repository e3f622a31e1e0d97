import { after } from "node:test";
import { driverConformance } from "../conformance.ts";
import { FakeDriver } from "./driver.ts";

const shared = new FakeDriver();
after(() => shared.closeAll());
driverConformance({
  label: "fake driver",
  driver: () => shared,
  fresh: () => shared,
  llm: () => ({ baseUrl: "http://127.0.0.1:9/v1", model: "m" }),
});
