"use strict";
// The try-on page: pick a photo and garments, create the look, then walk it step by step.
// Talks to the start, status and continue functions named in config.js.

(() => {
  const config = window.TRYON_CONFIG;
  const MAX_SIDE = 1024;        // uploads are downscaled in the browser, as the original frontend did
  const RUNNING = new Set(["pending", "processing"]);

  const TEXT = {
    ru: {
      title: "Виртуальная примерка",
      lead: "Загрузите своё фото и вещи — мы примерим их по очереди, а вы решаете после каждого шага.",
      yourPhoto: "Ваше фото", garments: "Вещи", noPhoto: "Нет фото", chooseFile: "Выбрать файл",
      orUrl: "или ссылка https://…", description: "Описание (необязательно)", remove: "Убрать",
      upper_body: "Верх", lower_body: "Низ", dresses: "Платье",
      addGarment: "Добавить вещь", start: "Создать образ", idle: "Здесь появится ваш образ",
      queued: "В очереди…", progress: "Шаг {k} из {n}", generating: "Шаг {k} из {n}: примеряем…",
      ready: "Шаг {k} из {n} готов!", completed: "Готово! Образ собран ({k} из {n})",
      failed: "Шаг {k} из {n} не получился", continue: "Продолжить (шаг {k}/{n})",
      finish: "Завершить здесь", retry: "Повторить", download: "Скачать", cancel: "Отменить",
      newLook: "Новый образ", steps: "Шаги", stepLabel: "Шаг {k}",
      needPhoto: "Добавьте своё фото.", needGarment: "Добавьте хотя бы одну вещь.",
      badUrl: "Ссылка должна начинаться с https://", notImage: "Этот файл не похож на изображение (PNG, JPEG или WebP).",
      network: "Нет связи с сервером. Пробуем ещё раз…", tooMany: "Можно добавить не больше {n} вещей.",
      lost: "Эта примерка не найдена. Начните новый образ.",
      reason: "Причина: ",
    },
    en: {
      title: "Virtual try-on",
      lead: "Upload your photo and the garments: we try them on one at a time, and you decide after each step.",
      yourPhoto: "Your photo", garments: "Garments", noPhoto: "No photo", chooseFile: "Choose file",
      orUrl: "or a link https://…", description: "Description (optional)", remove: "Remove",
      upper_body: "Top", lower_body: "Bottom", dresses: "Dress",
      addGarment: "Add garment", start: "Create look", idle: "Your look will appear here",
      queued: "Queued…", progress: "Step {k} of {n}", generating: "Step {k} of {n}: trying on…",
      ready: "Step {k} of {n} is ready!", completed: "Done! Your look is ready ({k} of {n})",
      failed: "Step {k} of {n} did not work out", continue: "Continue (step {k}/{n})",
      finish: "Finish here", retry: "Retry", download: "Download", cancel: "Cancel",
      newLook: "New look", steps: "Steps", stepLabel: "Step {k}",
      needPhoto: "Add your photo.", needGarment: "Add at least one garment.",
      badUrl: "The link must start with https://", notImage: "This file does not look like an image (PNG, JPEG or WebP).",
      network: "Cannot reach the server. Trying again…", tooMany: "At most {n} garments can be added.",
      lost: "This try-on was not found. Start a new look.",
      reason: "",
    },
  };
  // The API's error codes are stable; its sentences are English. Russian for the ones a shopper meets.
  const ERRORS_RU = {
    invalid_image: "Изображение не подходит: нужен файл PNG, JPEG или WebP до 3 МБ или ссылка https://",
    too_many_garments: "Слишком много вещей для одного образа.",
    payload_too_large: "Фотографии слишком большие. Выберите изображения поменьше.",
    too_many_active_tasks: "У вас уже есть незавершённые образы. Завершите или отмените один, прежде чем начинать новый.",
    start_rate_limited: "Вы создали много образов за последний час. Попробуйте позже.",
    step_rate_limited: "Слишком много шагов за последний час. Попробуйте позже.",
    service_busy: "Сервис сейчас очень загружен. Попробуйте через несколько минут.",
    database_unavailable: "Сервис временно недоступен. Попробуйте через минуту.",
    storage_unavailable: "Сервис временно недоступен. Попробуйте через минуту.",
    not_configured: "Сервис временно недоступен. Попробуйте позже.",
    internal_error: "Что-то пошло не так. Попробуйте через минуту.",
    wrong_state: "Состояние образа уже изменилось.",
    task_not_found: "Эта примерка не найдена. Начните новый образ.",
    user_required: "Не удалось определить пользователя. Обновите страницу.",
  };
  const MESSAGES_RU = { "canceled by user": "Вы отменили этот шаг." };
  const params = new URLSearchParams(location.search);
  const lang = params.get("lang") === "en" ? "en" : "ru";
  const t = (key, vars = {}) => (TEXT[lang][key] || key).replace(/\{(\w+)\}/g, (_, name) => vars[name] ?? "");

  const $ = (id) => document.getElementById(id);
  const ui = {
    compose: $("compose"), personFile: $("person-file"), personUrl: $("person-url"), personPreview: $("person-preview"),
    garments: $("garments"), addGarment: $("add-garment"), start: $("start"), progress: $("progress"),
    image: $("step-image"), spinner: $("spinner"), spinnerText: $("spinner-text"), placeholder: $("placeholder"),
    error: $("error"), continue: $("continue"), finish: $("finish"), retry: $("retry"), download: $("download"),
    cancel: $("cancel"), newLook: $("new-look"), steps: $("steps"),
  };

  // --- language --------------------------------------------------------------------------------

  function translate(root) {
    root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    root.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
    root.querySelectorAll("[data-i18n-title]").forEach((el) => { el.title = el.ariaLabel = t(el.dataset.i18nTitle); });
  }
  document.documentElement.lang = lang;
  document.title = t("title");
  translate(document);

  // --- who is this -----------------------------------------------------------------------------

  function userId() {
    let id = localStorage.getItem("tryon.user");
    if (!id) {
      id = "anon-" + crypto.randomUUID();
      localStorage.setItem("tryon.user", id);
    }
    return id;
  }

  // --- picking images --------------------------------------------------------------------------

  const picks = new Map();  // picker element -> data URI from a file

  function readAsImage(file) {
    return new Promise((resolve, reject) => {
      const url = URL.createObjectURL(file);
      const img = new Image();
      img.onload = () => { URL.revokeObjectURL(url); resolve(img); };
      img.onerror = () => { URL.revokeObjectURL(url); reject(new Error(t("notImage"))); };
      img.src = url;
    });
  }

  async function downscale(file) {
    const img = await readAsImage(file);
    const scale = Math.min(1, MAX_SIDE / Math.max(img.naturalWidth, img.naturalHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(img.naturalWidth * scale));
    canvas.height = Math.max(1, Math.round(img.naturalHeight * scale));
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";  // transparent garment photos become white-backed, not black
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/jpeg", 0.9);
  }

  function showPreview(preview, src) {
    preview.replaceChildren();
    if (src) {
      const img = new Image();
      img.alt = "";
      img.src = src;
      preview.append(img);
    } else {
      const span = document.createElement("span");
      span.textContent = t("noPhoto");
      preview.append(span);
    }
  }

  function wirePicker(picker, fileInput, urlInput, preview) {
    fileInput.addEventListener("change", async () => {
      const file = fileInput.files[0];
      if (!file) return;
      try {
        const dataUri = await downscale(file);
        picks.set(picker, dataUri);
        urlInput.value = "";
        showPreview(preview, dataUri);
        showError("");
      } catch (error) {
        picks.delete(picker);
        fileInput.value = "";
        showPreview(preview, null);
        showError(error.message);
      }
      refreshStart();
    });
    urlInput.addEventListener("input", () => {
      if (urlInput.value.trim()) {
        picks.delete(picker);
        fileInput.value = "";
        showPreview(preview, /^https:\/\//.test(urlInput.value.trim()) ? urlInput.value.trim() : null);
      }
      refreshStart();
    });
  }

  function imageOf(picker, urlInput) {
    return picks.get(picker) || urlInput.value.trim() || null;
  }

  function addGarmentRow() {
    if (ui.garments.children.length >= config.maxGarments) {
      showError(t("tooMany", { n: config.maxGarments }));
      return;
    }
    const row = document.getElementById("garment-row").content.firstElementChild.cloneNode(true);
    translate(row);
    wirePicker(row, row.querySelector("input[type=file]"), row.querySelector("input.url"), row.querySelector(".preview"));
    row.querySelector(".remove").addEventListener("click", () => {
      if (ui.garments.children.length > 1) {
        picks.delete(row);
        row.remove();
        refreshStart();
      }
    });
    ui.garments.append(row);
    refreshStart();
  }

  function gatherLook() {
    const person = imageOf(ui.compose, ui.personUrl);
    const garments = [...ui.garments.children].map((row) => {
      const image = imageOf(row, row.querySelector("input.url"));
      if (!image) return null;
      const garment = { image, category: row.querySelector("select.category").value };
      const description = row.querySelector("input.description").value.trim();
      if (description) garment.description = description;
      return garment;
    }).filter(Boolean);
    return { person, garments };
  }

  function refreshStart() {
    const { person, garments } = gatherLook();
    ui.start.disabled = busy || !person || garments.length === 0;
    ui.addGarment.disabled = ui.garments.children.length >= config.maxGarments;
  }

  // --- talking to the functions ----------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, body) { super(message); this.status = status; this.body = body; }
  }

  async function call(url, options = {}) {
    let response;
    try {
      response = await fetch(url, {
        ...options,
        headers: { "Content-Type": "application/json", "X-User-Id": userId(), ...(options.headers || {}) },
      });
    } catch (error) {
      throw new ApiError(t("network"), 0, null);
    }
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    if (!response.ok) {
      const translated = lang === "ru" && body && ERRORS_RU[body.code];
      throw new ApiError(translated || (body && body.error) || `HTTP ${response.status}`, response.status, body);
    }
    return body;
  }

  // --- the task --------------------------------------------------------------------------------

  let taskId = null;
  let busy = false;         // a button's request is in flight: no second click goes out
  let pollTimer = null;
  let lastView = null;

  function remember(id) {
    taskId = id;
    const url = new URL(location.href);
    if (id) {
      localStorage.setItem("tryon.task", id);
      url.searchParams.set("task", id);
    } else {
      localStorage.removeItem("tryon.task");
      url.searchParams.delete("task");
    }
    history.replaceState(null, "", url);
  }

  function showError(message) {
    ui.error.textContent = message || "";
    ui.error.hidden = !message;
  }

  function setBusy(value) {
    busy = value;
    for (const button of [ui.continue, ui.finish, ui.retry, ui.cancel, ui.start]) button.disabled = value;
    if (!value) refreshStart();
  }

  async function act(action) {
    if (busy || !taskId) return;
    setBusy(true);
    showError("");
    try {
      render(await call(config.continue, { method: "POST", body: JSON.stringify({ task_id: taskId, action }) }));
    } catch (error) {
      showError(error.message);
      if (error.body && error.body.status) await refresh();
    } finally {
      setBusy(false);
      schedulePoll();
    }
  }

  async function start() {
    if (busy) return;
    const { person, garments } = gatherLook();
    if (!person) return showError(t("needPhoto"));
    if (!garments.length) return showError(t("needGarment"));
    for (const image of [person, ...garments.map((g) => g.image)]) {
      if (!image.startsWith("data:") && !image.startsWith("https://")) return showError(t("badUrl"));
    }
    setBusy(true);
    showError("");
    try {
      const created = await call(config.start, {
        method: "POST",
        headers: { "Idempotency-Key": crypto.randomUUID() },
        body: JSON.stringify({ person_image: person, garments }),
      });
      remember(created.task_id);
      render({ status: created.status, current_step: 0, total_steps: created.total_steps, actions: ["cancel"], steps: [] });
      await refresh();
    } catch (error) {
      showError(error.message);
    } finally {
      setBusy(false);
      schedulePoll();
    }
  }

  async function refresh() {
    if (!taskId) return;
    const url = `${config.status}${config.status.includes("?") ? "&" : "?"}task_id=${encodeURIComponent(taskId)}&force_check=true`;
    try {
      render(await call(url));
      if (ui.error.textContent === t("network")) showError("");
    } catch (error) {
      if (error.status === 404) {
        remember(null);
        reset();
        showError(t("lost"));
      } else {
        showError(error.message);
      }
    }
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    if (taskId && lastView && RUNNING.has(lastView.status)) {
      pollTimer = setTimeout(async () => { await refresh(); schedulePoll(); }, config.pollSeconds * 1000);
    }
  }

  // --- drawing the task ------------------------------------------------------------------------

  function render(view) {
    lastView = view;
    const k = view.current_step || 0;
    const n = view.total_steps || 0;
    const image = view.status === "completed" ? view.result_url : view.intermediate_result;
    const can = new Set(view.actions || []);

    ui.compose.classList.toggle("locked", Boolean(taskId));
    ui.compose.querySelectorAll("input, select, button").forEach((el) => { el.disabled = Boolean(taskId); });
    if (!taskId) refreshStart();

    let text;
    if (view.status === "pending") text = t("queued");
    else if (view.status === "processing") text = t("generating", { k, n });
    else if (view.status === "waiting_continue") text = t("ready", { k, n });
    else if (view.status === "completed") text = t("completed", { k, n });
    else if (view.status === "failed") text = t("failed", { k: Math.max(k, 1), n });
    else text = t("progress", { k, n });
    ui.progress.textContent = text;
    ui.progress.dataset.status = view.status;

    if (image) {
      if (ui.image.getAttribute("src") !== image) ui.image.src = image;
      ui.image.alt = t("stepLabel", { k });
      ui.image.hidden = false;
      ui.placeholder.hidden = true;
      ui.download.href = image;
      ui.download.download = `look-step-${k}${extensionOf(image)}`;
    } else {
      ui.image.hidden = true;
      ui.image.removeAttribute("src");
      ui.placeholder.hidden = RUNNING.has(view.status);
    }
    ui.spinner.hidden = !RUNNING.has(view.status);
    ui.spinnerText.textContent = text;
    ui.image.classList.toggle("dim", RUNNING.has(view.status));

    ui.continue.hidden = !can.has("continue");
    ui.continue.textContent = t("continue", { k: k + 1, n });
    ui.finish.hidden = !can.has("finish");
    ui.retry.hidden = !can.has("retry");
    ui.cancel.hidden = !can.has("cancel");
    ui.download.hidden = !image || RUNNING.has(view.status);
    ui.newLook.hidden = RUNNING.has(view.status);
    showServerError(view);
    renderSteps(view);
  }

  function showServerError(view) {
    if (view.status === "failed" && view.error_message) {
      showError(lang === "ru" && MESSAGES_RU[view.error_message] || t("reason") + view.error_message);
    }
    else if (ui.error.textContent && ui.error.textContent !== t("network") && view.status !== "failed" && !busy) showError("");
  }

  function renderSteps(view) {
    ui.steps.replaceChildren(...(view.steps || []).map((step) => {
      const li = document.createElement("li");
      li.className = `step ${step.status}`;
      li.title = step.garment && step.garment.description ? step.garment.description : t("stepLabel", { k: step.step });
      if (step.image_url) {
        const img = new Image();
        img.src = step.image_url;
        img.alt = t("stepLabel", { k: step.step });
        li.append(img);
      } else {
        const span = document.createElement("span");
        span.textContent = step.step;
        li.append(span);
      }
      return li;
    }));
  }

  function extensionOf(url) {
    const match = /\.(png|jpe?g|webp)(?:$|\?)/i.exec(url);
    return match ? `.${match[1].toLowerCase()}` : ".png";
  }

  function reset() {
    clearTimeout(pollTimer);
    lastView = null;
    ui.compose.classList.remove("locked");
    ui.compose.querySelectorAll("input, select, button").forEach((el) => { el.disabled = false; });
    ui.progress.textContent = t("idle");
    delete ui.progress.dataset.status;
    ui.image.hidden = true;
    ui.spinner.hidden = true;
    ui.placeholder.hidden = false;
    for (const el of [ui.continue, ui.finish, ui.retry, ui.cancel, ui.download, ui.newLook]) el.hidden = true;
    ui.steps.replaceChildren();
    showError("");
    refreshStart();
  }

  // --- wiring ----------------------------------------------------------------------------------

  wirePicker(ui.compose, ui.personFile, ui.personUrl, ui.personPreview);
  addGarmentRow();
  ui.addGarment.addEventListener("click", addGarmentRow);
  ui.start.addEventListener("click", start);
  ui.continue.addEventListener("click", () => act("continue"));
  ui.finish.addEventListener("click", () => act("finish"));
  ui.retry.addEventListener("click", () => act("retry"));
  ui.cancel.addEventListener("click", () => act("cancel"));
  ui.newLook.addEventListener("click", () => { remember(null); reset(); });
  ui.download.addEventListener("click", async (event) => {
    // Same origin (the devserver): the link's download attribute saves the file. Images on a
    // bucket or CDN are cross-origin, where browsers ignore it and would leave this page: fetch
    // the bytes (if the host allows CORS) and save them, else show the image in a new tab.
    const url = new URL(ui.download.href, location.href);
    if (url.origin === location.origin) return;
    event.preventDefault();
    try {
      const response = await fetch(url, { mode: "cors" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const blobUrl = URL.createObjectURL(await response.blob());
      const link = Object.assign(document.createElement("a"), { href: blobUrl, download: ui.download.download });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(blobUrl), 10000);
    } catch (error) {
      window.open(url.href, "_blank", "noopener");
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && taskId) refresh().then(schedulePoll);
  });

  const resumed = params.get("task") || localStorage.getItem("tryon.task");
  if (resumed) {
    remember(resumed);
    refresh().then(schedulePoll);
  }
})();
