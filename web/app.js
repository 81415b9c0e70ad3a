"use strict";
// The try-on page: pick a photo and garments, create the look, then walk it step by step.
// Talks to the start, status and continue functions named in config.js. Fields added by newer
// backends (error_code, progress, my looks, share links) are used when present and not required.

(() => {
  const config = window.TRYON_CONFIG;
  const MAX_SIDE = 1024;        // uploads are downscaled in the browser, as the original frontend did
  const BEFORE_SIDE = 512;      // the person photo kept in this browser for the compare slider
  const THUMB_SIDE = 160;       // garment thumbnails kept to show a resumed look's form
  const LOCAL_LOOKS = 20;       // looks remembered in this browser (a backend without ?mine=true)

  // Every task status the page knows, and what it means here. Nothing else names a status.
  // running: poll and show progress; stepRuns: a prediction is at work; open: leaving asks first;
  // failure: show why; result: the look is done and result_url is its image.
  const STATES = {
    pending:          { text: "queued",     badge: "badgeQueued",  running: true,  open: true },
    processing:       { text: "generating", badge: "badgeRunning", running: true,  open: true, stepRuns: true },
    waiting_continue: { text: "ready",      badge: "badgeReady",   running: false, open: true },
    failed:           { text: "failed",     badge: "badgeFailed",  running: false, open: true, failure: true },
    completed:        { text: "completed",  badge: "badgeDone",    running: false, open: false, result: true },
  };
  const UNKNOWN_STATE = { text: "progress", badge: "badgeRunning", running: false, open: true };
  const stateOf = (status) => STATES[status] || UNKNOWN_STATE;

  const TEXT = {
    ru: {
      title: "Виртуальная примерка",
      lead: "Загрузите своё фото и вещи — мы примерим их по очереди, а вы решаете после каждого шага.",
      yourPhoto: "Ваше фото", garments: "Вещи", noPhoto: "Нет фото", chooseFile: "Выбрать файл",
      orUrl: "Или ссылка на картинку (https://)", description: "Описание (необязательно)", category: "Категория",
      upper_body: "Верх", lower_body: "Низ", dresses: "Платье",
      personName: "ваше фото", garmentName: "вещь {i}", fileFor: "Выбрать файл: {name}", urlFor: "Ссылка на картинку: {name}",
      categoryFor: "Категория: {name}", descriptionFor: "Описание: {name}", removeFor: "Убрать {name}",
      addGarment: "Добавить вещь", start: "Создать образ", idle: "Здесь появится ваш образ",
      queued: "В очереди…", progress: "Шаг {k} из {n}", generating: "Шаг {k} из {n}: примеряем…",
      ready: "Шаг {k} из {n} готов!", completed: "Готово! Образ собран ({k} из {n})",
      failed: "Шаг {k} из {n} не получился", continue: "Продолжить (шаг {k}/{n})",
      finish: "Завершить здесь", retry: "Повторить", download: "Скачать", cancel: "Отменить",
      newLook: "Новый образ", steps: "Шаги", stepLabel: "Шаг {k}", openStep: "Шаг {k}: открыть целиком",
      stepOf: "Шаг {k} из {n}", close: "Закрыть", compare: "Сравнить с исходным фото",
      modelSaid: "Что ответила модель", share: "Поделиться", unshare: "Закрыть доступ",
      shareCopied: "Ссылка скопирована — отправьте её кому хотите:", shareCopy: "Скопируйте ссылку:",
      unshared: "Доступ по ссылке закрыт.", shareUnsupported: "Поделиться этим образом пока нельзя.",
      sharedTitle: "С вами поделились образом", sharedSteps: "примерено вещей: {k} из {n}", shareGone: "Эта ссылка больше не действует.",
      estimate: "Весь образ займёт около {time}.", left: "Осталось около {time}", almost: "Почти готово…",
      seconds: "{n} с", minutes: "{n} мин",
      lockedNote: "Этот образ уже создан. Чтобы собрать другой, нажмите «Новый образ».",
      foreignNote: "Фото этого образа остались в браузере, где его создали.",
      confirmLeave: "Этот образ ещё не завершён. Он останется в «Моих образах», и к нему можно вернуться. Начать новый?",
      confirmYes: "Начать новый образ", stay: "Остаться",
      myLooks: "Мои образы", open: "Открыть", opened: "Открыт", lookOf: "Образ: шаг {k} из {n}", more: "Показать ещё",
      lookFinish: "Завершить", lookCancel: "Отменить",
      badgeQueued: "в очереди", badgeRunning: "примеряем", badgeReady: "ждёт вас", badgeFailed: "не получился", badgeDone: "готов",
      needPhoto: "Добавьте своё фото.", needGarment: "Добавьте хотя бы одну вещь.",
      badUrl: "Ссылка должна начинаться с https://",
      urlLogin: "В ссылке есть логин или пароль. Нужна открытая ссылка на картинку — без них.",
      notImage: "«{file}» не похож на изображение. Подойдут PNG, JPEG или WebP.",
      heic: "Формат HEIC не поддерживается — сохраните «{file}» как JPEG (на iPhone: Настройки → Камера → Форматы → «Наиболее совместимый»).",
      tooSmall: "Картинка слишком маленькая: {w}×{h} пикселей. Нужно не меньше {min} пикселей по каждой стороне.",
      network: "Нет связи с сервером. Пробуем ещё раз…", tooMany: "Можно добавить не больше {n} вещей.",
      serverDown: "Сервер сейчас не отвечает. Пробуем ещё раз…",
      gaveUp: "Связь с сервером так и не появилась. Проверьте интернет и нажмите «{button}» ещё раз.",
      continueName: "Продолжить", language: "Язык",
      shareGoneOwn: "Эта ссылка больше не действует. Ниже можно собрать свой образ.",
      stopped: "Вы остановили шаг {k} из {n}",
      stoppedRetry: "Нажмите «{retry}», чтобы запустить шаг {k} заново.",
      stoppedRetryOrFinish: "Нажмите «{retry}», чтобы запустить шаг {k} заново, или «{finish}», чтобы оставить образ таким, каким он был после шага {prev}.",
      lost: "Эта примерка не найдена: её могли создать в другом браузере (показать образ другому можно кнопкой «Поделиться»). Начните новый образ.",
    },
    en: {
      title: "Virtual try-on",
      lead: "Upload your photo and the garments: we try them on one at a time, and you decide after each step.",
      yourPhoto: "Your photo", garments: "Garments", noPhoto: "No photo", chooseFile: "Choose file",
      orUrl: "Or a link to a picture (https://)", description: "Description (optional)", category: "Category",
      upper_body: "Top", lower_body: "Bottom", dresses: "Dress",
      personName: "your photo", garmentName: "garment {i}", fileFor: "Choose file: {name}", urlFor: "Link to a picture: {name}",
      categoryFor: "Category: {name}", descriptionFor: "Description: {name}", removeFor: "Remove {name}",
      addGarment: "Add garment", start: "Create look", idle: "Your look will appear here",
      queued: "Queued…", progress: "Step {k} of {n}", generating: "Step {k} of {n}: trying on…",
      ready: "Step {k} of {n} is ready!", completed: "Done! Your look is ready ({k} of {n})",
      failed: "Step {k} of {n} did not work out", continue: "Continue (step {k}/{n})",
      finish: "Finish here", retry: "Retry", download: "Download", cancel: "Cancel",
      newLook: "New look", steps: "Steps", stepLabel: "Step {k}", openStep: "Step {k}: open full size",
      stepOf: "Step {k} of {n}", close: "Close", compare: "Compare with the original photo",
      modelSaid: "What the model said", share: "Share", unshare: "Stop sharing",
      shareCopied: "Link copied: send it to anyone you like:", shareCopy: "Copy the link:",
      unshared: "The link no longer works.", shareUnsupported: "This look cannot be shared yet.",
      sharedTitle: "A look shared with you", sharedSteps: "{k} of {n} garments tried on", shareGone: "This link no longer works.",
      estimate: "The whole look takes about {time}.", left: "About {time} left", almost: "Almost there…",
      seconds: "{n} s", minutes: "{n} min",
      lockedNote: "This look is created. To make another one, press “New look”.",
      foreignNote: "The photos of this look stayed in the browser that created it.",
      confirmLeave: "This look is not finished. It stays in “My looks” and you can come back to it. Start a new one?",
      confirmYes: "Start a new look", stay: "Stay",
      myLooks: "My looks", open: "Open", opened: "Open now", lookOf: "Look: step {k} of {n}", more: "Show more",
      lookFinish: "Finish", lookCancel: "Cancel",
      badgeQueued: "queued", badgeRunning: "trying on", badgeReady: "waiting for you", badgeFailed: "did not work out", badgeDone: "done",
      needPhoto: "Add your photo.", needGarment: "Add at least one garment.",
      badUrl: "The link must start with https://",
      urlLogin: "The link has a login or password in it. Use a public link to the picture, without them.",
      notImage: "“{file}” does not look like an image. PNG, JPEG or WebP will do.",
      heic: "HEIC is not supported: save “{file}” as JPEG (on an iPhone: Settings → Camera → Formats → “Most Compatible”).",
      tooSmall: "The picture is too small: {w}×{h} pixels. It needs at least {min} pixels on each side.",
      network: "No connection to the server. Trying again…", tooMany: "At most {n} garments can be added.",
      serverDown: "The server is not answering right now. Trying again…",
      gaveUp: "The connection to the server did not come back. Check your internet and press “{button}” again.",
      continueName: "Continue", language: "Language",
      shareGoneOwn: "This link no longer works. You can make your own look below.",
      stopped: "You stopped step {k} of {n}",
      stoppedRetry: "Press “{retry}” to run step {k} again.",
      stoppedRetryOrFinish: "Press “{retry}” to run step {k} again, or “{finish}” to keep the look as it was after step {prev}.",
      lost: "This try-on was not found: it may have been made in another browser (to show a look to someone, use “Share”). Start a new look.",
    },
  };
  // A failed step's error_code, as a sentence naming the page's own Retry button.
  const FAILURES = {
    ru: {
      model_failed: "Модель не смогла примерить вещь на шаге {k}. Нажмите «{retry}» — часто со второго раза получается.",
      canceled_by_user: "Вы отменили этот шаг.",
      step_timeout: "Шаг {k} шёл слишком долго и был остановлен. Нажмите «{retry}», чтобы запустить его снова.",
      output_removed: "Картинка шага {k} пропала, прежде чем мы её сохранили. Нажмите «{retry}».",
      prediction_lost: "Сервис примерки потерял шаг {k}. Нажмите «{retry}», чтобы запустить его снова.",
      replicate_rejected: "Сервис примерки не принял шаг {k}. Нажмите «{retry}» чуть позже или попробуйте другое фото.",
      canceled: "Шаг {k} был остановлен сервисом примерки. Нажмите «{retry}», чтобы запустить его снова.",
      no_output: "Модель не вернула картинку на шаге {k}. Нажмите «{retry}», чтобы попробовать ещё раз.",
      output_unusable: "Картинку шага {k} не удалось сохранить. Нажмите «{retry}», чтобы запустить шаг снова.",
      launch_failed: "Шаг {k} не удалось запустить несколько раз подряд. Нажмите «{retry}» чуть позже.",
      input_missing: "Для шага {k} не нашлось фото или вещи. Начните новый образ.",
      other: "Шаг {k} не получился. Нажмите «{retry}», чтобы попробовать ещё раз.",
    },
    en: {
      model_failed: "The try-on model could not finish step {k}. Press “{retry}”: it often works the second time.",
      canceled_by_user: "You canceled this step.",
      step_timeout: "Step {k} took too long and was stopped. Press “{retry}” to run it again.",
      output_removed: "The image of step {k} was gone before we could save it. Press “{retry}”.",
      prediction_lost: "The try-on service lost step {k}. Press “{retry}” to run it again.",
      replicate_rejected: "The try-on service did not accept step {k}. Press “{retry}” a little later or try another photo.",
      canceled: "Step {k} was stopped by the try-on service. Press “{retry}” to run it again.",
      no_output: "The model returned no image for step {k}. Press “{retry}” to try again.",
      output_unusable: "The image of step {k} could not be saved. Press “{retry}” to run the step again.",
      launch_failed: "Step {k} could not be started several times in a row. Press “{retry}” a little later.",
      input_missing: "The photo or garment for step {k} is missing. Start a new look.",
      other: "Step {k} did not work out. Press “{retry}” to try again.",
    },
  };
  // A backend without error_code: its English sentences, matched to a code (and the model's words).
  const FAILURE_SENTENCES = [
    [/^canceled by user$/i, "canceled_by_user"],
    [/could not finish step \d+: (.+?)\. Press Retry/i, "model_failed"],
    [/could not finish step \d+/i, "model_failed"],
    [/took longer than/i, "step_timeout"],
    [/no longer has the prediction/i, "prediction_lost"],
    [/deleted the image/i, "output_removed"],
  ];
  // The API's error codes are stable; its sentences are English. Russian for the ones a shopper meets.
  const ERRORS_RU = {
    invalid_image: "Изображение не подходит: нужен файл PNG, JPEG или WebP до 3 МБ не меньше 256 пикселей по стороне или открытая ссылка https://",
    too_many_garments: "Слишком много вещей для одного образа.",
    payload_too_large: "Фотографии слишком большие. Выберите изображения поменьше.",
    too_many_active_tasks: "Сейчас уже примеряются другие ваши образы. Дождитесь, пока один из них будет готов, или отмените его в «Моих образах».",
    invalid_text: "В тексте есть символы, которые не удалось прочитать. Исправьте описание или ссылку.",
    start_rate_limited: "Вы создали много образов за последний час. Попробуйте позже.",
    step_rate_limited: "Слишком много шагов за последний час. Попробуйте позже.",
    service_busy: "Сервис сейчас очень загружен. Попробуйте через несколько минут.",
    database_unavailable: "Сервис временно недоступен. Попробуйте через минуту.",
    storage_unavailable: "Сервис временно недоступен. Попробуйте через минуту.",
    replicate_unavailable: "Сервис примерки временно недоступен. Попробуйте через минуту.",
    not_configured: "Сервис временно недоступен. Попробуйте позже.",
    internal_error: "Что-то пошло не так. Попробуйте через минуту.",
    wrong_state: "Состояние образа уже изменилось.",
    task_not_found: "Эта примерка не найдена. Начните новый образ.",
    user_required: "Не удалось определить пользователя. Обновите страницу.",
  };

  const params = new URLSearchParams(location.search);
  const LANGS = ["ru", "en"];
  const langOf = (value) => LANGS.find((code) => new RegExp(`^${code}(?:[-_]|$)`, "i").test((value || "").trim()));
  // ?lang= (any case, en-US too), else the choice made with the switch in this browser, else
  // Russian, the page's language, unless the browser's preferred languages hold no Russian at all.
  function pickLang() {
    const asked = langOf(params.get("lang"));
    if (asked) return asked;
    let chosen = null;
    try { chosen = langOf(localStorage.getItem("tryon.lang")); } catch (error) { /* no storage */ }
    if (chosen) return chosen;
    const preferred = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language])
      .filter(Boolean);
    return preferred.length && !preferred.some((code) => langOf(code) === "ru") ? "en" : "ru";
  }
  const lang = pickLang();
  const fill = (text, vars) => text.replace(/\{(\w+)\}/g, (_, name) => vars[name] ?? "");
  const t = (key, vars = {}) => fill(TEXT[lang][key] || key, vars);

  const $ = (id) => document.getElementById(id);
  const ui = {
    layout: $("layout"), compose: $("compose"), result: $("result"), lockedNote: $("locked-note"),
    garments: $("garments"), addGarment: $("add-garment"), start: $("start"),
    progress: $("progress"), estimate: $("estimate"), barWrap: $("bar-wrap"), bar: $("step-progress"),
    barFill: $("bar-fill"), eta: $("eta"), image: $("step-image"), before: $("before-image"),
    spinner: $("spinner"), placeholder: $("placeholder"), compareWrap: $("compare-wrap"), compare: $("compare"),
    notice: $("notice"), hint: $("hint"),
    error: $("error"), errorText: $("error-text"), errorMore: $("error-more"), errorDetail: $("error-detail"),
    continue: $("continue"), finish: $("finish"), retry: $("retry"), download: $("download"),
    share: $("share"), cancel: $("cancel"), newLook: $("new-look"),
    shareBox: $("share-box"), shareNote: $("share-note"), shareUrl: $("share-url"), unshare: $("unshare"),
    stepsTitle: $("steps-title"), steps: $("steps"), looksCard: $("looks-card"), looks: $("looks"),
    announce: $("announce"), confirm: $("confirm-dialog"), confirmText: $("confirm-text"),
    confirmYes: $("confirm-yes"), confirmNo: $("confirm-no"),
    viewer: $("viewer"), viewerTitle: $("viewer-title"), viewerImage: $("viewer-image"),
    viewerDownload: $("viewer-download"), viewerClose: $("viewer-close"),
  };
  const setText = (el, text) => { if (el.textContent !== text) el.textContent = text; };

  // --- language --------------------------------------------------------------------------------

  function translate(root) {
    root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  }
  document.documentElement.lang = lang;
  document.title = t("title");
  translate(document);

  // RU / EN in the header: a link to this page in the other language (the look on screen kept).
  const langLinks = [...document.querySelectorAll("#lang-switch a[data-lang]")];
  // lang-switch, notice and hint are newer than some embeds' copies of index.html: each is optional.
  $("lang-switch")?.setAttribute("aria-label", t("language"));
  function langHref(code) {
    const url = new URL(location.href);
    url.searchParams.set("lang", code);
    return url.href;
  }
  function refreshLangLinks() {
    for (const link of langLinks) {
      link.href = langHref(link.dataset.lang);
      if (link.dataset.lang === lang) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    }
  }
  for (const link of langLinks) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      try { localStorage.setItem("tryon.lang", link.dataset.lang); } catch (error) { /* no storage */ }
      if (link.dataset.lang !== lang) location.assign(langHref(link.dataset.lang));
    });
  }
  refreshLangLinks();

  // --- what this browser remembers -------------------------------------------------------------

  const store = {
    get(key, fallback = null) {
      try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch (error) { return fallback; }
    },
    set(key, value) {
      try { localStorage.setItem(key, JSON.stringify(value)); } catch (error) { /* full: the page works without it */ }
    },
  };

  function userId() {
    let id = localStorage.getItem("tryon.user");
    if (!id) {
      id = "anon-" + crypto.randomUUID();
      localStorage.setItem("tryon.user", id);
    }
    return id;
  }

  // Looks made in this browser: the photos shown in a resumed look's form and the compare slider.
  function rememberLook(id, data) {
    const ids = [id, ...store.get("tryon.looks", []).filter((other) => other !== id)];
    for (const dropped of ids.splice(LOCAL_LOOKS)) localStorage.removeItem(`tryon.look.${dropped}`);
    store.set("tryon.looks", ids);
    store.set(`tryon.look.${id}`, data);
  }
  const lookData = (id) => (id ? store.get(`tryon.look.${id}`) : null);

  // --- picking images --------------------------------------------------------------------------

  // One picker per image: the person photo or a garment row. `image` is what gets sent.
  class Picker {
    constructor(root, name) {
      this.root = root;
      this.name = name;
      this.file = root.querySelector("input[type=file]");
      this.url = root.querySelector("input.url");
      this.preview = root.querySelector(".preview");
      this.errorEl = root.querySelector(".picker-error");
      this.dataUri = null;
      this.problem = null;
      this.file.addEventListener("change", () => this.pickFile());
      this.url.addEventListener("input", () => this.typeUrl(false));
      this.url.addEventListener("change", () => this.typeUrl(true));
    }

    label(name) {
      this.name = name;
      this.file.setAttribute("aria-label", t("fileFor", { name }));
      this.url.setAttribute("aria-label", t("urlFor", { name }));
    }

    get image() { return this.dataUri || this.url.value.trim() || null; }

    async pickFile() {
      const file = this.file.files[0];
      if (!file) return;
      submission = null;
      this.url.value = "";
      try {
        const { dataUri, before } = await prepareUpload(file);
        this.dataUri = dataUri;
        this.before = before;
        this.setProblem(null);
        showPreview(this.preview, dataUri);
      } catch (error) {
        this.dataUri = null;
        this.file.value = "";
        showPreview(this.preview, null);
        this.setProblem(error.message, true);
      }
      refreshStart();
    }

    typeUrl(committed) {
      submission = null;
      const value = this.url.value.trim();
      if (value) {
        this.dataUri = null;
        this.before = value;
        this.file.value = "";
      }
      const problem = value ? urlProblem(value) : null;
      // While typing only clear an old complaint; a finished link gets checked and shown.
      if (!problem || committed) this.setProblem(problem, committed);
      showPreview(this.preview, value && !problem ? value : null, (img) => {
        const small = sizeProblem(img);
        if (small && this.url.value.trim() === value) this.setProblem(small, true);
      });
      refreshStart();
    }

    setProblem(message, reveal = false) {
      this.problem = message;
      this.errorEl.textContent = message || "";
      this.errorEl.hidden = !message;
      this.root.classList.toggle("invalid", Boolean(message));
      if (message && reveal) this.errorEl.scrollIntoView({ block: "center", behavior: "smooth" });
    }

    clear() {
      this.dataUri = null;
      this.before = null;
      this.file.value = "";
      this.url.value = "";
      this.setProblem(null);
      showPreview(this.preview, null);
    }
  }

  function readAsImage(file) {
    return new Promise((resolve, reject) => {
      const url = URL.createObjectURL(file);
      const img = new Image();
      img.onload = () => { URL.revokeObjectURL(url); resolve(img); };
      img.onerror = () => { URL.revokeObjectURL(url); reject(new Error(t("notImage", { file: file.name }))); };
      img.src = url;
    });
  }

  function sizeProblem(img) {
    const min = config.minImageSide;
    return Math.min(img.naturalWidth, img.naturalHeight) < min
      ? t("tooSmall", { w: img.naturalWidth, h: img.naturalHeight, min }) : null;
  }

  function urlProblem(value) {
    let url;
    try { url = new URL(value); } catch (error) { return t("badUrl"); }
    if (url.protocol !== "https:") return t("badUrl");
    if (url.username || url.password) return t("urlLogin");
    return null;
  }

  function toJpeg(img, longest, shortest = 0) {
    const { naturalWidth: w, naturalHeight: h } = img;
    // Downscale to `longest`, but never below `shortest` on the short side (a long narrow photo).
    const scale = Math.min(1, Math.max(longest / Math.max(w, h), shortest / Math.min(w, h)));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(w * scale));
    canvas.height = Math.max(1, Math.round(h * scale));
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";  // transparent garment photos become white-backed, not black
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    return canvas.toDataURL("image/jpeg", 0.9);
  }

  async function prepareUpload(file) {
    let img;
    try {
      img = await readAsImage(file);
    } catch (error) {
      // Only a picture this browser cannot read is refused for being HEIC: one it can read (Safari
      // shows HEIC; a JPEG may be named .heic) is converted to JPEG below like any other.
      const heic = /heic|heif/i.test(file.type) || /\.(heic|heif)$/i.test(file.name);
      throw heic ? new Error(t("heic", { file: file.name })) : error;
    }
    const small = sizeProblem(img);
    if (small) throw new Error(small);
    return { dataUri: toJpeg(img, MAX_SIDE, config.minImageSide), before: toJpeg(img, BEFORE_SIDE) };
  }

  function showPreview(preview, src, onload) {
    const img = new Image();
    img.alt = "";
    if (src) {
      if (onload) img.onload = () => onload(img);
      img.src = src;
      preview.replaceChildren(img);
    } else {
      const span = document.createElement("span");
      span.textContent = t("noPhoto");
      preview.replaceChildren(span);
    }
  }

  const person = new Picker($("person-picker"), t("personName"));
  person.label(t("personName"));
  const garmentPickers = [];
  let rowIds = 0;

  function addGarmentRow() {
    if (garmentPickers.length >= config.maxGarments) return;
    const row = $("garment-row").content.firstElementChild.cloneNode(true);
    translate(row);
    const id = `g${++rowIds}`;
    for (const [selector, suffix] of [["input.url", "url"], ["select.category", "category"], ["input.description", "description"]]) {
      row.querySelector(selector).id = `${id}-${suffix}`;
      row.querySelector(`.${suffix}-label`).htmlFor = `${id}-${suffix}`;
    }
    row.querySelector(".picker-error").id = `${id}-error`;
    row.querySelectorAll("input").forEach((input) => input.setAttribute("aria-describedby", `${id}-error`));
    const picker = new Picker(row, "");
    row.querySelector(".remove").addEventListener("click", () => {
      if (garmentPickers.length < 2) return;
      garmentPickers.splice(garmentPickers.indexOf(picker), 1);
      row.remove();
      submission = null;
      nameGarments();
      refreshStart();
    });
    row.querySelector("input.description").addEventListener("input", () => { submission = null; });
    row.querySelector("select.category").addEventListener("change", () => { submission = null; });
    garmentPickers.push(picker);
    ui.garments.append(row);
    nameGarments();
    refreshStart();
    return picker;
  }

  // Screen readers hear which picker a control belongs to: "Choose file: garment 2".
  function nameGarments() {
    garmentPickers.forEach((picker, index) => {
      const name = t("garmentName", { i: index + 1 });
      picker.label(name);
      picker.root.querySelector("select.category").setAttribute("aria-label", t("categoryFor", { name }));
      picker.root.querySelector("input.description").setAttribute("aria-label", t("descriptionFor", { name }));
      const remove = picker.root.querySelector(".remove");
      remove.setAttribute("aria-label", t("removeFor", { name }));
      remove.title = t("removeFor", { name });
      remove.hidden = garmentPickers.length < 2;
    });
  }

  function gatherLook() {
    const garments = garmentPickers.filter((picker) => picker.image).map((picker) => {
      const garment = { image: picker.image, category: picker.root.querySelector("select.category").value };
      const description = picker.root.querySelector("input.description").value.trim();
      if (description) garment.description = description;
      return garment;
    });
    return { person: person.image, garments };
  }

  function refreshStart() {
    const { person: photo, garments } = gatherLook();
    ui.start.disabled = busy || Boolean(taskId) || shareToken !== null || !photo || garments.length === 0;
    ui.addGarment.disabled = Boolean(taskId) || garmentPickers.length >= config.maxGarments;
  }

  // --- talking to the functions ----------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, body, retryAfter = null) {
      super(message); this.status = status; this.body = body; this.retryAfter = retryAfter;
    }
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
      const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
      throw new ApiError(translated || (body && body.error) || `HTTP ${response.status}`, response.status, body,
                         Number.isFinite(retryAfter) ? retryAfter : null);
    }
    return body;
  }

  // A request that never got an answer (no connection) or got a gateway's 502/503/504 is sent
  // again while the page is open: after 1, 2, 4, 8, 15, 15… s (config.retryPauseSeconds doubled, at
  // most 15 s, or the server's Retry-After), and at once when the browser says it is back online.
  // After config.retrySeconds the shopper is asked to press the button again. A 503 for settings
  // that are wrong (not_configured) waits for the operator, not for time: it is said at once.
  const RETRYABLE = new Set([0, 502, 503, 504]);
  const retryable = (error) => error instanceof ApiError && RETRYABLE.has(error.status)
    && !(error.body && error.body.code === "not_configured");
  const RETRY_TEXTS = () => [t("network"), t("serverDown")];

  function pause(ms) {
    return new Promise((resolve) => {
      const done = () => { clearTimeout(timer); removeEventListener("online", done); resolve(); };
      const timer = setTimeout(done, ms);
      addEventListener("online", done);
    });
  }

  // `attempt(tries)` until it answers. `stillWanted()` false (the form changed meanwhile) drops it.
  async function persist(attempt, button, stillWanted = () => true) {
    const setting = (value, fallback) => (Number.isFinite(value) && value >= 0 ? value : fallback);
    const deadline = Date.now() + setting(config.retrySeconds, 120) * 1000;
    const first = Math.max(0.05, setting(config.retryPauseSeconds, 1));
    for (let tries = 0; ; tries++) {
      try {
        return await attempt(tries);
      } catch (error) {
        if (!retryable(error)) throw error;
        const left = deadline - Date.now();
        if (left <= 0) throw new ApiError(t("gaveUp", { button }), error.status, null);
        showError(error.status === 0 ? t("network") : t("serverDown"));
        await pause(Math.min(left, 1000 * Math.max(Math.min(15, first * 2 ** tries), error.retryAfter || 0)));
        if (!stillWanted()) throw new ApiError("", -1, null);
      }
    }
  }

  // A look's button, sent again while the connection is down. The lost request may have reached the
  // server: sent again with the same position it changes nothing once the look has moved on, and
  // that 409 means the first one got through (null: read the look to see where it is).
  function sendAction(body, button) {
    return persist(async (tries) => {
      try {
        return await post(body);
      } catch (error) {
        if (tries > 0 && error.status === 409) return null;
        throw error;
      }
    }, button);
  }

  const statusUrl = (query) => `${config.status}${config.status.includes("?") ? "&" : "?"}${new URLSearchParams(query)}`;
  const post = (body) => call(config.continue, { method: "POST", body: JSON.stringify(body) });

  // --- the look on screen ----------------------------------------------------------------------

  let taskId = null;
  let shareToken = null;    // a read-only look opened from a share link
  let busy = false;         // a button's request is in flight: no second click goes out
  let submission = null;    // {key}: one Idempotency-Key per submitted form, reused if sent again
  let pollTimer = null;
  let lastView = null;
  let announced = null;

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
    refreshLangLinks();
  }

  function showError(message, detail = null) {
    setText(ui.errorText, message || "");
    ui.error.hidden = !message;
    setText(ui.errorDetail, detail || "");
    ui.errorMore.hidden = !detail;
  }

  function setBusy(value) {
    busy = value;
    for (const button of [ui.continue, ui.finish, ui.retry, ui.cancel, ui.share]) button.disabled = value;
    refreshStart();
  }

  // Where a look stands when its button is pressed: sent with the action, so the server applies it
  // only while the look is still there (a request sent again after its answer was lost is a 409).
  function positionOf(view) {
    const step = (view.steps || []).find((s) => s.step === view.current_step);
    return step && step.attempt ? { step: view.current_step, attempt: step.attempt } : { step: view.current_step };
  }

  const BUTTON_NAMES = { continue: "continueName", finish: "finish", retry: "retry", cancel: "cancel" };

  async function act(action) {
    if (busy || !taskId) return;
    const id = taskId;
    const seen = lastView && lastView.task_id === id ? positionOf(lastView) : {};
    setBusy(true);
    showError("");
    try {
      const view = (await sendAction({ task_id: id, action, ...seen }, t(BUTTON_NAMES[action] || action)))
        || await call(statusUrl({ task_id: id }));
      showError("");
      render(view);
      focusLook();
    } catch (error) {
      showError(error.message);
      if (error.body && error.body.status) await refresh();
      if (document.activeElement === document.body || !document.activeElement) focusLook();
    } finally {
      setBusy(false);
      schedulePoll();
      loadLooks();
    }
  }

  // After a button of the look: the heading that says where the look is now (the button pressed
  // is disabled while it works, and often hidden after).
  function focusLook() {
    ui.progress.focus({ preventScroll: true });
  }

  async function start() {
    if (busy || taskId) return;
    const { person: photo, garments } = gatherLook();
    const invalid = [person, ...garmentPickers].find((picker) => picker.problem);
    if (invalid) return invalid.setProblem(invalid.problem, true);
    if (!photo) return person.setProblem(t("needPhoto"), true);
    if (!garments.length) return garmentPickers[0].setProblem(t("needGarment"), true);
    for (const picker of [person, ...garmentPickers]) {
      const problem = picker.image && !picker.image.startsWith("data:") && urlProblem(picker.image);
      if (problem) return picker.setProblem(problem, true);
    }
    submission = submission || { key: crypto.randomUUID() };
    const sent = submission;
    const payload = JSON.stringify({ person_image: photo, garments });
    setBusy(true);
    showError("");
    try {
      // Sent again as it was, with the same Idempotency-Key: start answers with the look that key
      // already made, so a retry never makes a second look. Editing the form drops the retry.
      const created = await persist(() => call(config.start, {
        method: "POST",
        headers: { "Idempotency-Key": sent.key },
        body: payload,
      }), t("start"), () => submission === sent);
      submission = null;
      showError("");
      rememberLook(created.task_id, {
        before: person.before,
        garments: garmentPickers.filter((p) => p.image).map((p) => ({
          image: p.dataUri ? thumbnailOf(p.preview) : p.image,
          category: p.root.querySelector("select.category").value,
          description: p.root.querySelector("input.description").value.trim(),
        })),
        estimate: created.estimated_time_seconds ?? null,
        total: created.total_steps,
        started: Date.now(),
      });
      remember(created.task_id);
      render({ task_id: created.task_id, status: created.status, current_step: 0, total_steps: created.total_steps,
               actions: ["cancel"], steps: [] });
      if (ui.notice) ui.notice.hidden = true;
      revealLook();
      focusLook();
      await refresh();
    } catch (error) {
      showError(error.message);
    } finally {
      setBusy(false);
      schedulePoll();
      loadLooks();
    }
  }

  // On a phone the look moves above the form it was made from: without this the shopper is left
  // looking at the greyed form while the look (and its Continue) runs off-screen above.
  function revealLook() {
    const top = ui.result.getBoundingClientRect().top;
    if (top < 0 || top > innerHeight / 2) ui.result.scrollIntoView({ block: "start" });
  }

  function thumbnailOf(preview) {
    const img = preview.querySelector("img");
    return img && img.naturalWidth ? toJpeg(img, THUMB_SIDE) : null;
  }

  async function refresh() {
    if (!taskId && shareToken === null) return;
    const query = shareToken !== null ? { share: shareToken } : { task_id: taskId, force_check: "true" };
    try {
      render(await call(statusUrl(query)));
      if (!busy && RETRY_TEXTS().includes(ui.errorText.textContent)) showError("");
    } catch (error) {
      if (error.status === 404 && shareToken !== null) {
        leaveShare();
      } else if (error.status === 404) {
        remember(null);
        reset();
        showError(t("lost"));
      } else {
        showError(error.message);
      }
    }
  }

  // A share link that no longer works: say so at the top, where the page opens, and give the
  // shopper the page as it is without a link (the form below usable, their own looks).
  function leaveShare() {
    shareToken = null;
    ui.layout.classList.remove("shared");
    const url = new URL(location.href);
    url.searchParams.delete("share");
    history.replaceState(null, "", url);
    refreshLangLinks();
    reset();
    ui.announce.textContent = t("shareGoneOwn");
    if (ui.notice) {
      setText(ui.notice, t("shareGoneOwn"));
      ui.notice.hidden = false;
      ui.notice.focus();
    } else {
      showError(t("shareGoneOwn"));
    }
    loadLooks();
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    if (lastView && stateOf(lastView.status).running && (taskId || shareToken !== null)) {
      pollTimer = setTimeout(async () => { await refresh(); schedulePoll(); }, config.pollSeconds * 1000);
    }
  }

  // --- drawing the look ------------------------------------------------------------------------

  function render(view) {
    const previous = lastView;
    lastView = view;
    const state = stateOf(view.status);
    const k = view.current_step || 0;
    const n = view.total_steps || 0;
    const image = state.result ? view.result_url : view.intermediate_result;
    const can = new Set(shareToken === null ? view.actions || [] : []);
    const local = lookData(taskId);

    ui.layout.classList.add("has-look");
    lockForm(local);

    // A step the shopper stopped is no failure: said plainly, with what the buttons now do.
    const stopped = Boolean(state.failure && failureOf(view).code === "canceled_by_user");
    const text = t(stopped ? "stopped" : state.text, { k: state.failure ? Math.max(k, 1) : k, n });
    // A viewer of a shared look is told what it holds, not the owner's next step.
    const tried = state.result || view.status === "waiting_continue" ? k : Math.max(k - 1, 0);
    setText(ui.progress, shareToken !== null ? `${t("sharedTitle")} · ${t("sharedSteps", { k: tried, n })}` : text);
    ui.progress.dataset.status = view.status;
    ui.progress.classList.toggle("stopped", stopped);
    announce(`${view.status}:${k}`, text);

    const estimate = local && local.estimate;
    ui.estimate.hidden = !(estimate && state.running);
    if (estimate) setText(ui.estimate, t("estimate", { time: duration(estimate) }));
    renderProgress(view, state, local);

    if (image) {
      if (ui.image.getAttribute("src") !== image) ui.image.src = image;
      ui.image.alt = t("stepLabel", { k });
      ui.image.hidden = false;
      ui.placeholder.hidden = true;
      setDownload(ui.download, image, k);
    } else {
      ui.image.hidden = true;
      ui.image.removeAttribute("src");
      ui.placeholder.hidden = state.running;
    }
    ui.spinner.hidden = !state.running;
    ui.image.classList.toggle("dim", state.running);

    const before = local && local.before;
    const comparable = Boolean(image && before && !state.running);
    if (comparable && ui.before.getAttribute("src") !== before) ui.before.src = before;
    if (!comparable || (previous && previous.task_id !== view.task_id)) ui.compare.value = "0";
    ui.compareWrap.hidden = !comparable;
    showBefore();

    ui.continue.hidden = !can.has("continue");
    setText(ui.continue, t("continue", { k: k + 1, n }));
    ui.finish.hidden = !can.has("finish");
    ui.retry.hidden = !can.has("retry");
    ui.cancel.hidden = !can.has("cancel");
    ui.download.hidden = !image || state.running;
    ui.share.hidden = shareToken !== null || !image;
    ui.newLook.hidden = shareToken !== null;
    if (previous && previous.task_id !== view.task_id) ui.shareBox.hidden = true;
    showFailure(view, k, stopped, can);
    renderSteps(view);
    if (shareToken === null) followInLooks(view);
  }

  // My looks shows the look on screen as the page polls it, not as it was when the list loaded.
  function followInLooks(view) {
    const look = looks.find((item) => item.task_id === view.task_id);
    if (!look || (look.status === view.status && look.current_step === view.current_step)) return;
    Object.assign(look, { status: view.status, current_step: view.current_step, actions: view.actions || [],
                          thumbnail: view.result_url || view.intermediate_result || look.thumbnail,
                          updated_at: view.updated_at || look.updated_at });
    renderLooks();
  }

  // Say what changed, once: a screen reader hears "Step 1 of 2 is ready!", not every poll.
  function announce(key, text) {
    if (key === announced) return;
    announced = key;
    ui.announce.textContent = text;
  }

  function renderProgress(view, state, local) {
    ui.barWrap.hidden = !state.running;
    if (!state.running) return;
    const { percent, eta } = progressOf(view, local);
    if (percent === null) {
      ui.bar.removeAttribute("aria-valuenow");  // indeterminate: queued, or no estimate at all
      ui.barFill.style.width = "";
      ui.bar.classList.add("indeterminate");
    } else {
      ui.bar.setAttribute("aria-valuenow", String(percent));
      ui.barFill.style.width = `${percent}%`;
      ui.bar.classList.remove("indeterminate");
    }
    ui.bar.setAttribute("aria-label", t("generating", { k: view.current_step || 1, n: view.total_steps || 0 }));
    const left = eta === null ? "" : eta > 0 ? t("left", { time: duration(eta) }) : t("almost");
    setText(ui.eta, left);
    if (left) ui.bar.setAttribute("aria-valuetext", percent === null ? left : `${percent}% · ${left}`);
    else ui.bar.removeAttribute("aria-valuetext");
  }

  // The backend's `progress` when it sends one; otherwise a guess from the step's start time and
  // the estimate the start call gave (per step), capped below 100 until the step is really done.
  function progressOf(view, local) {
    const p = view.progress;
    if (p && typeof p === "object") {
      const eta = Number.isFinite(p.eta_s) ? Math.max(0, Math.round(p.eta_s)) : null;
      let percent = Number.isFinite(p.percent) ? p.percent : null;
      if (percent === null && eta !== null && Number.isFinite(p.elapsed_s) && p.elapsed_s + eta > 0) {
        percent = (100 * p.elapsed_s) / (p.elapsed_s + eta);
      }
      return { percent: percent === null ? null : Math.round(Math.min(100, Math.max(0, percent))), eta };
    }
    const step = (view.steps || []).find((s) => s.step === view.current_step);
    const perStep = local && local.estimate && local.total ? local.estimate / local.total : null;
    if (!stateOf(view.status).stepRuns || !step || !step.started_at || !perStep) return { percent: null, eta: null };
    const elapsed = Math.max(0, (Date.now() - Date.parse(step.started_at)) / 1000);
    return { percent: Math.round(Math.min(95, (100 * elapsed) / perStep)), eta: Math.max(0, Math.round(perStep - elapsed)) };
  }

  function duration(seconds) {
    return seconds < 90 ? t("seconds", { n: Math.max(1, Math.round(seconds)) }) : t("minutes", { n: Math.round(seconds / 60) });
  }

  function showBefore() {
    const value = Number(ui.compare.value);
    ui.before.hidden = ui.compareWrap.hidden || value === 0;
    ui.before.style.clipPath = `inset(0 ${100 - value}% 0 0)`;
  }

  // A failed look's error_code (or, from a backend without codes, the one its sentence stands for)
  // and the model's own words.
  function failureOf(view) {
    let code = view.error_code || null;
    let detail = view.error_detail ?? null;
    if (!code && view.error_message) {
      const found = FAILURE_SENTENCES.find(([pattern]) => pattern.test(view.error_message));
      code = found ? found[1] : null;
      const words = found && found[0].exec(view.error_message)[1];
      detail = words || (found ? null : view.error_message);
    }
    return { code, detail };
  }

  function showFailure(view, k, stopped, can) {
    const hint = stopped && can.has("retry")
      ? t(can.has("finish") ? "stoppedRetryOrFinish" : "stoppedRetry",
          { k: Math.max(k, 1), prev: Math.max(k - 1, 1), retry: t("retry"), finish: t("finish") })
      : "";
    if (ui.hint) {
      setText(ui.hint, hint);
      ui.hint.hidden = !hint;
    }
    if (stopped || !stateOf(view.status).failure || !(view.error_code || view.error_message)) {
      if (!busy && !RETRY_TEXTS().includes(ui.errorText.textContent)) showError("");
      return;
    }
    const { code, detail } = failureOf(view);
    const sentences = FAILURES[lang];
    const sentence = fill(sentences[code] || sentences.other, { k: Math.max(k, 1), retry: t("retry") });
    showError(sentence, detail && detail !== sentence ? detail : null);
  }

  function renderSteps(view) {
    // A look finished early never runs its later steps: show only the steps it has.
    const ended = stateOf(view.status).result;
    const steps = (view.steps || []).filter((step) => !ended || step.image_url || step.prediction_id);
    ui.stepsTitle.hidden = steps.length === 0;
    ui.steps.replaceChildren(...steps.map((step) => {
      const li = document.createElement("li");
      li.className = `step ${step.status}`;
      if (step.image_url) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "step-open";
        button.dataset.testid = "step-thumb";
        button.setAttribute("aria-label", t("openStep", { k: step.step }));
        const img = new Image();
        img.src = step.image_url;
        img.alt = "";
        button.append(img);
        button.addEventListener("click", () => openViewer(step, view.total_steps));
        li.append(button);
      } else {
        const span = document.createElement("span");
        span.textContent = step.step;
        span.setAttribute("aria-label", t("stepLabel", { k: step.step }));
        li.append(span);
      }
      return li;
    }));
  }

  function openViewer(step, n) {
    setText(ui.viewerTitle, t("stepOf", { k: step.step, n }));
    ui.viewerImage.src = step.image_url;
    ui.viewerImage.alt = t("stepLabel", { k: step.step });
    setDownload(ui.viewerDownload, step.image_url, step.step);
    ui.viewer.showModal();
    // On a phone Back closes the viewer instead of leaving the page: the viewer has its own
    // history entry, dropped again when the viewer is closed some other way.
    if (!viewerEntry) {
      if (!(history.state && history.state.tryonViewer)) history.pushState({ tryonViewer: step.step }, "", location.href);
      viewerEntry = true;
    }
  }
  let viewerEntry = false;

  ui.viewer.addEventListener("close", () => {
    if (!viewerEntry) return;
    viewerEntry = false;
    history.back();
  });
  addEventListener("popstate", (event) => {
    if (viewerEntry) {
      viewerEntry = false;
      if (ui.viewer.open) ui.viewer.close();
      return;
    }
    // Forward again onto a viewer's entry: the viewer opens again, if its step is still on screen.
    const k = event.state && event.state.tryonViewer;
    const step = k && lastView && (lastView.steps || []).find((s) => s.step === k && s.image_url);
    if (step) openViewer(step, lastView.total_steps);
  });

  function setDownload(link, url, k) {
    link.href = url;
    link.download = `look-step-${k}${extensionOf(url)}`;
  }

  function extensionOf(url) {
    const match = /\.(png|jpe?g|webp)(?:$|\?)/i.exec(url);
    return match ? `.${match[1].toLowerCase()}` : ".png";
  }

  // The form of the look on screen: locked, showing what it was made of (when this browser made it).
  function lockForm(local) {
    const locked = Boolean(taskId) || shareToken !== null;
    ui.compose.classList.toggle("locked", locked);
    ui.compose.hidden = shareToken !== null;
    ui.compose.querySelectorAll("input, select, button").forEach((el) => { el.disabled = locked; });
    ui.lockedNote.hidden = !locked;
    if (!locked) return refreshStart();
    refreshStart();
    const known = Boolean(local);
    setText(ui.lockedNote, known ? t("lockedNote") : `${t("foreignNote")} ${t("lockedNote")}`);
    ui.compose.classList.toggle("foreign", !known);
    if (!known || ui.compose.dataset.look === taskId) return;
    ui.compose.dataset.look = taskId;
    // Rebuild the pickers from what this browser kept (a reload, or a look opened from My looks).
    if (!person.dataUri && !person.url.value) showPreview(person.preview, local.before);
    if (garmentPickers.some((picker) => picker.image)) return;
    while (garmentPickers.length < local.garments.length) addGarmentRow();
    local.garments.forEach((garment, index) => {
      const picker = garmentPickers[index];
      showPreview(picker.preview, garment.image);
      picker.root.querySelector("select.category").value = garment.category;
      picker.root.querySelector("input.description").value = garment.description || "";
    });
    ui.compose.querySelectorAll("input, select, button").forEach((el) => { el.disabled = true; });
  }

  function reset() {
    clearTimeout(pollTimer);
    lastView = null;
    announced = null;
    delete ui.compose.dataset.look;
    ui.layout.classList.remove("has-look");
    ui.compose.classList.remove("locked", "foreign");
    ui.compose.hidden = false;
    ui.lockedNote.hidden = true;
    ui.compose.querySelectorAll("input, select, button").forEach((el) => { el.disabled = false; });
    person.clear();
    for (const picker of garmentPickers.splice(0)) picker.root.remove();
    addGarmentRow();
    submission = null;
    setText(ui.progress, t("idle"));
    delete ui.progress.dataset.status;
    for (const el of [ui.image, ui.before, ui.spinner, ui.barWrap, ui.estimate, ui.compareWrap, ui.shareBox, ui.stepsTitle,
                      ui.continue, ui.finish, ui.retry, ui.cancel, ui.download, ui.share, ui.newLook]) el.hidden = true;
    ui.placeholder.hidden = false;
    ui.steps.replaceChildren();
    if (ui.hint) ui.hint.hidden = true;
    ui.progress.classList.remove("stopped");
    showError("");
    refreshStart();
  }

  // --- leaving a look, and coming back to it ---------------------------------------------------

  function askToLeave() {
    if (!lastView || !stateOf(lastView.status).open) return Promise.resolve(true);
    setText(ui.confirmText, t("confirmLeave"));
    setText(ui.confirmYes, t("confirmYes"));
    return new Promise((resolve) => {
      const done = (answer) => {
        ui.confirm.removeEventListener("close", onClose);
        if (ui.confirm.open) ui.confirm.close();
        resolve(answer);
      };
      const onClose = () => done(false);  // Escape
      ui.confirmYes.onclick = () => done(true);
      ui.confirmNo.onclick = () => done(false);
      ui.confirm.addEventListener("close", onClose);
      ui.confirm.showModal();
      ui.confirmNo.focus();
    });
  }

  async function newLook() {
    if (busy || !(await askToLeave())) return;
    remember(null);
    reset();
    loadLooks();
    ui.compose.scrollIntoView({ block: "start" });
    person.file.focus({ preventScroll: true });
  }

  async function openLook(id) {
    if (id === taskId || busy) return;
    if (taskId && !(await askToLeave())) return;
    remember(null);
    reset();
    remember(id);
    await refresh();
    schedulePoll();
    renderLooks();
    ui.progress.scrollIntoView({ block: "start" });
  }

  // --- my looks --------------------------------------------------------------------------------

  let looks = [];
  let looksNext = null;

  // GET /status?mine=true when the backend has it; otherwise the looks this browser made.
  async function loadLooks(cursor = null) {
    if (shareToken !== null) return;
    try {
      const page = await call(statusUrl(cursor ? { mine: "true", cursor } : { mine: "true" }));
      if (!page || !Array.isArray(page.looks)) throw new ApiError("no looks", 400, page);
      looks = cursor ? [...looks, ...page.looks] : page.looks;
      looksNext = page.next || null;
    } catch (error) {
      if (error.status !== 400 && error.status !== 404 && error.status !== 405) return;
      looks = await localLooks();
      looksNext = null;
    }
    renderLooks();
  }

  async function localLooks() {
    const ids = store.get("tryon.looks", []);
    const found = await Promise.all(ids.map((id) => call(statusUrl({ task_id: id })).catch((error) => error)));
    const kept = [];
    const items = [];
    found.forEach((view, index) => {
      if (view instanceof ApiError) {
        if (view.status !== 404) kept.push(ids[index]);
        return;
      }
      kept.push(ids[index]);
      items.push({ task_id: view.task_id, status: view.status, current_step: view.current_step,
                   total_steps: view.total_steps, thumbnail: view.result_url || view.intermediate_result,
                   updated_at: view.updated_at, actions: view.actions || [] });
    });
    store.set("tryon.looks", kept);
    return items;
  }

  function renderLooks() {
    ui.looksCard.hidden = looks.length === 0;
    const items = looks.map((look) => {
      const li = document.createElement("li");
      li.className = "look-item";
      li.dataset.testid = "look-item";
      li.dataset.task = look.task_id;
      const current = look.task_id === taskId;
      if (current) li.setAttribute("aria-current", "true");
      const thumb = document.createElement("div");
      thumb.className = "look-thumb";
      const src = look.thumbnail || (lookData(look.task_id) || {}).before;
      if (src) {
        const img = new Image();
        img.src = src;
        img.alt = "";
        thumb.append(img);
      }
      const about = document.createElement("div");
      about.className = "look-about";
      about.id = `look-${look.task_id}`;
      const title = document.createElement("strong");
      title.textContent = t("lookOf", { k: look.current_step || 0, n: look.total_steps || 0 });
      const badge = document.createElement("span");
      badge.className = `badge ${look.status}`;
      badge.textContent = t(stateOf(look.status).badge);
      const when = document.createElement("time");
      if (look.updated_at) {
        when.dateTime = look.updated_at;
        when.textContent = new Date(look.updated_at).toLocaleString(lang === "ru" ? "ru-RU" : "en-GB",
          { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
      }
      about.append(title, badge, when);
      const buttons = document.createElement("div");
      buttons.className = "look-actions";
      const open = lookButton(current ? t("opened") : t("open"), about.id, () => openLook(look.task_id));
      open.dataset.testid = "look-open";
      open.disabled = current;
      buttons.append(open);
      const can = new Set(look.actions || []);
      if (can.has("finish")) buttons.append(lookButton(t("lookFinish"), about.id, () => actOn(look.task_id, "finish", look.current_step), "look-finish"));
      if (can.has("cancel")) buttons.append(lookButton(t("lookCancel"), about.id, () => actOn(look.task_id, "cancel"), "look-cancel"));
      li.append(thumb, about, buttons);
      return li;
    });
    if (looksNext) {
      const li = document.createElement("li");
      li.append(lookButton(t("more"), null, () => loadLooks(looksNext)));
      items.push(li);
    }
    ui.looks.replaceChildren(...items);
  }

  function lookButton(text, describedBy, onClick, testid) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary small";
    button.textContent = text;
    if (describedBy) button.setAttribute("aria-describedby", describedBy);
    if (testid) button.dataset.testid = testid;
    button.addEventListener("click", onClick);
    return button;
  }

  // Finish or Cancel on another look of the list: sent again like the look's own buttons when the
  // connection drops (Finish with the step the list showed; a 409 to a resend means it got through).
  async function actOn(id, action, step) {
    if (id === taskId) return act(action);
    if (busy) return;
    setBusy(true);
    const seen = action === "finish" && Number.isInteger(step) ? { step } : {};
    try {
      await sendAction({ task_id: id, action, ...seen }, t(action === "finish" ? "lookFinish" : "lookCancel"));
      showError("");
    } catch (error) {
      showError(error.message);
    } finally {
      setBusy(false);
      loadLooks();
    }
  }

  // --- sharing ---------------------------------------------------------------------------------

  // The backend's share_url carries the token; the link handed out opens this page read-only.
  function pageLinkFor(shareUrl) {
    const token = new URL(shareUrl, location.href).searchParams.get("share");
    if (!token) return shareUrl;
    const link = new URL(location.pathname, location.href);
    link.searchParams.set("share", token);
    if (lang === "en") link.searchParams.set("lang", "en");
    return link.href;
  }

  async function share() {
    if (busy || !taskId) return;
    setBusy(true);
    try {
      const reply = await post({ task_id: taskId, action: "share" });
      if (!reply || !reply.share_url) throw new ApiError(t("shareUnsupported"), 400, reply);
      const link = pageLinkFor(reply.share_url);
      let copied = true;
      try { await navigator.clipboard.writeText(link); } catch (error) { copied = false; }
      ui.shareUrl.value = link;
      setText(ui.shareNote, copied ? t("shareCopied") : t("shareCopy"));
      ui.unshare.hidden = false;
      ui.shareBox.hidden = false;
      if (!copied) ui.shareUrl.select();
    } catch (error) {
      showError(error.status === 400 ? t("shareUnsupported") : error.message);
    } finally {
      setBusy(false);
    }
  }

  async function unshare() {
    if (busy || !taskId) return;
    setBusy(true);
    try {
      await post({ task_id: taskId, action: "unshare" });
      ui.shareUrl.value = "";
      setText(ui.shareNote, t("unshared"));
      ui.unshare.hidden = true;
    } catch (error) {
      showError(error.message);
    } finally {
      setBusy(false);
    }
  }

  // --- downloads -------------------------------------------------------------------------------

  async function download(event) {
    // Same origin (the devserver): the link's download attribute saves the file. Images on a
    // bucket or CDN are cross-origin, where browsers ignore it and would leave this page: fetch
    // the bytes (if the host allows CORS) and save them, else show the image in a new tab.
    const link = event.currentTarget;
    const url = new URL(link.href, location.href);
    if (url.origin === location.origin) return;
    event.preventDefault();
    try {
      const response = await fetch(url, { mode: "cors" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const blobUrl = URL.createObjectURL(await response.blob());
      const save = Object.assign(document.createElement("a"), { href: blobUrl, download: link.download });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(blobUrl), 10000);
    } catch (error) {
      window.open(url.href, "_blank", "noopener");
    }
  }

  // --- wiring ----------------------------------------------------------------------------------

  addGarmentRow();
  ui.addGarment.addEventListener("click", () => {
    if (garmentPickers.length >= config.maxGarments) return showError(t("tooMany", { n: config.maxGarments }));
    submission = null;
    addGarmentRow();
  });
  ui.start.addEventListener("click", start);
  ui.continue.addEventListener("click", () => act("continue"));
  ui.finish.addEventListener("click", () => act("finish"));
  ui.retry.addEventListener("click", () => act("retry"));
  ui.cancel.addEventListener("click", () => act("cancel"));
  ui.newLook.addEventListener("click", newLook);
  ui.share.addEventListener("click", share);
  ui.unshare.addEventListener("click", unshare);
  ui.compare.addEventListener("input", showBefore);
  ui.download.addEventListener("click", download);
  ui.viewerDownload.addEventListener("click", download);
  ui.viewerClose.addEventListener("click", () => ui.viewer.close());
  addEventListener("online", () => {
    if (!busy && (taskId || shareToken !== null)) refresh().then(schedulePoll);
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && (taskId || shareToken !== null)) refresh().then(schedulePoll);
  });

  if (params.get("share")) {
    shareToken = params.get("share");
    ui.layout.classList.add("shared");
    refresh().then(schedulePoll);
  } else {
    const resumed = params.get("task") || localStorage.getItem("tryon.task");
    if (resumed) {
      remember(resumed);
      refresh().then(schedulePoll);
    }
    loadLooks();
  }
})();
